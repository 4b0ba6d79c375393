import type { EntityManager } from 'typeorm';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import type { AuditValue } from '../../audit/audit-hash';
import { existingDistributionIds, insertQueuedDistributions, requeueFailedDistributions } from '../../store/queries/distributions';
import { storePackages, type BuiltPackage, type PackageRequest } from './issue-packages';

// Not a use case: one chunk's transaction of a distribute call (part of distribute.ts).

export interface DistributionRef {
  distributionId: string;
  key: string;
  version: number;
  listenerId: string;
  target: string;
}

/** A package request of a distribute call: a new distribution, or a failed one queued again. */
export type ChunkRequest = PackageRequest & { requeue: boolean; ref: DistributionRef };

/** What one chunk's transaction queued, and what it found queued by another call meanwhile. */
export interface ChunkOutcome {
  queued: DistributionRef[];
  skipped: Array<DistributionRef & { state: string }>;
}

/**
 * Writes one chunk in the caller's transaction: its distribution rows, signed
 * packages, outbox rows and one audit event. A distribution another call
 * queued meanwhile is skipped (its package is dropped unsent).
 */
export async function storeChunk(m: EntityManager, chunk: ChunkRequest[], built: BuiltPackage[], requestId: string, actor: string, now: Date): Promise<ChunkOutcome> {
  const result: ChunkOutcome = { queued: [], skipped: [] };
  const requeue = chunk.filter((r) => r.requeue).map((r) => r.distribution.id);
  // Lock order of every writer is the audit chain, then distribution rows. New rows are
  // nobody else's, so the chain is locked only at the end unless existing rows change.
  if (requeue.length) await lockAuditChain(m);
  const packageOf = new Map(built.map((b) => [b.distributionId, b.packageId]));
  const fresh = chunk.filter((r) => !r.requeue).map((r) => r.distribution);
  let inserted: string[] = [];
  if (fresh.length) {
    const n = await insertQueuedDistributions(m, fresh, packageOf, actor, now);
    inserted = fresh.map((d) => d.id);
    // Another call queued some of these meanwhile: keep only the rows that are ours.
    if (n !== fresh.length) inserted = await existingDistributionIds(m, inserted);
  }
  const requeued = requeue.length ? await requeueFailedDistributions(m, requeue, packageOf, now) : [];
  const kept = new Set([...inserted, ...requeued.map((r) => r.id)]);
  await storePackages(
    m,
    built.filter((b) => kept.has(b.distributionId)),
  );
  // One audit event per chunk, naming every distribution it queued: the chunk is one decision of one actor.
  const queued: AuditValue[] = [];
  for (const r of chunk) {
    if (kept.has(r.ref.distributionId)) {
      result.queued.push(r.ref);
      queued.push({ id: r.ref.distributionId, key: r.ref.key, version: r.ref.version, listener: r.ref.listenerId, target: r.ref.target, requeued: r.requeue });
    } else {
      result.skipped.push({ ...r.ref, state: 'queued elsewhere' });
    }
  }
  if (queued.length) await appendAudit(m, [{ actor, action: 'distribution.queued', subject: `request:${requestId}`, details: { count: queued.length, distributions: queued } }]);
  return result;
}
