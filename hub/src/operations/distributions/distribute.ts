import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../../context';
import type { StoredKek } from '../../store/queries/listeners';
import { chunkSize, planChunks, type Destination } from '../../domain/distribute-plan';
import { distributeAction } from '../../domain/distribution-state';
import { assignSequences, countByListener } from '../../domain/sequences';
import { loadPackageChains } from '../../crypto/package-chains';
import { signPackages } from '../../crypto/package-signer';
import { DistributionEntity, type KeyEntity, type KeyVersionEntity } from '../../store/entities';
import { findExistingDistributions } from '../../store/queries/distributions';
import { allocateSequences, loadKeks } from '../../store/queries/listeners';
import { storeChunk, type ChunkOutcome, type ChunkRequest, type DistributionRef } from './distribute-chunk';
import { allowedDestinations, resolveDestinations, resolveKeys, type KeySelection, type KeySelector } from './distribute-selection';
import type { BuiltPackage } from './issue-packages';

export type { Destination, DistributionRef, KeySelector };

export interface DistributeInput {
  /** Named keys, or every key whose name starts with `prefix` (current versions). */
  keys: KeySelection;
  /** 'all': every target of every active listener. */
  to: Destination[] | 'all';
  actor: string;
}

export interface DistributeResult {
  keys: Array<{ name: string; version: number; kcv: string }>;
  queued: DistributionRef[];
  skipped: Array<DistributionRef & { state: string }>;
}

/** Chunk transactions of one call that run at the same time. */
const STORES_IN_FLIGHT = 2;

/**
 * One call for any fan-out (one key to every site, many keys to one site).
 * Rule (domain/distribution-state.ts, distributeAction): pushing a key again
 * where it is confirmed or in flight changes nothing; where it failed, it is
 * queued afresh.
 *
 * The work runs as a pipeline of chunks (at most `delivery.issueBatch` packages,
 * domain/distribute-plan.ts): while two chunks' rows are written and committed,
 * the HSM wraps and signs the next, and the outbox relay already publishes the
 * chunks before. Each chunk commits its distribution rows, signed packages,
 * outbox rows and audit events together. If a chunk fails, no further chunk
 * starts; the chunks committed stay queued and the error says how many; the
 * call is idempotent, so running it again queues the rest.
 */
@injectable()
export class Distribute {
  constructor(private readonly ctx: HubContext) {}

  async execute(input: DistributeInput): Promise<DistributeResult> {
    const { ds } = this.ctx;
    const m = ds.manager;
    const selected = await resolveKeys(m, input.keys);
    const pairs = await resolveDestinations(m, input.to);
    const existing = await findExistingDistributions(
      m,
      selected.map((s) => s.version.id),
      [...new Set(pairs.map((p) => p.listenerId))],
    );
    const byTriple = new Map(existing.map((d) => [`${d.keyVersionId}/${d.listenerId}/${d.target}`, d]));

    const now = new Date();
    const requests: ChunkRequest[] = [];
    const result: DistributeResult = { keys: selected.map((s) => ({ name: s.key.name, version: s.version.version, kcv: s.version.kcv })), queued: [], skipped: [] };
    for (const { key, version } of selected) {
      for (const { listenerId, target } of allowedDestinations(key, pairs)) {
        const p = { listenerId, target };
        const d = byTriple.get(`${version.id}/${p.listenerId}/${p.target}`);
        const ref = { key: key.name, version: version.version, listenerId: p.listenerId, target: p.target };
        const action = distributeAction(d?.state);
        if (action === 'create') requests.push(newRequest(key, version, p, input.actor, now, ref));
        else if (action === 'requeue') requests.push({ distribution: Object.assign(new DistributionEntity(), d), key, version, requeue: true, ref: { distributionId: d!.id, ...ref } });
        else result.skipped.push({ distributionId: d!.id, ...ref, state: d!.state });
      }
    }
    if (requests.length === 0) return result;
    const { outcomes, committed, failure } = await this.pipeline(requests, input.actor, now);
    for (const o of outcomes) {
      if (!o) continue;
      result.queued.push(...o.queued);
      result.skipped.push(...o.skipped);
    }
    if (failure) {
      const { err } = failure;
      if (committed === 0) throw err;
      const e = KeyhubError.from(err);
      throw new KeyhubError(e.code, `${e.message} (${committed} of ${requests.length} distributions were queued before this failure; the same call again queues the rest)`, {
        cause: err,
        details: { queued: committed, requested: requests.length },
      });
    }
    return result;
  }

  /**
   * Signs and stores the requests chunk by chunk: the next chunk is signed
   * while this one is stored, and two chunks are stored at a time. Outcomes
   * come back in chunk order; after a failure no further chunk starts.
   */
  private async pipeline(requests: ChunkRequest[], actor: string, now: Date): Promise<{ outcomes: Array<ChunkOutcome | undefined>; committed: number; failure?: { err: unknown } }> {
    const { ds, keyring, config } = this.ctx;
    const m = ds.manager;
    // The KEKs first; the sequence blocks for the whole call in their own short transaction,
    // which runs while the HSM already wraps the first chunks (only the payloads need them).
    const counts = countByListener(requests);
    const keks: Map<string, StoredKek> = await loadKeks(m, [...counts.keys()]);
    const sequences = ds.transaction((tx) => allocateSequences(tx, counts)).then((before) => assignSequences(requests, before));
    sequences.catch(() => undefined);

    // Names this call in the audit trail: every chunk's event has it as subject.
    const requestId = randomUUID();
    const chunks = planChunks(requests, chunkSize(requests.length, config.delivery.issueBatch));
    // The next chunk is signed while this one is stored. (Signing two at a time, to fill the
    // sessions' idle moments between steps, measured slower: the CPU is already the limit.)
    const signing: Array<Promise<BuiltPackage[]> | undefined> = [];
    const sign = (k: number): void => {
      if (k >= chunks.length || signing[k]) return;
      const c = chunks[k];
      const p = signPackages(
        keyring,
        c.items,
        keks,
        sequences.then((all) => all.slice(c.from, c.from + c.items.length)),
        config.delivery.packageTtlSeconds,
        loadPackageChains(m, c.items),
      );
      // Handled where awaited; a failure must not surface as an unhandled rejection meanwhile.
      p.catch(() => undefined);
      signing[k] = p;
    };
    // Two chunks are stored at a time: a chunk's transaction is mostly waiting on PostgreSQL
    // (its inserts, then the audit lock and the commit), and the next one's inserts fit in there.
    // Their results are put back in chunk order.
    const outcomes: Array<ChunkOutcome | undefined> = [];
    const storing = new Set<Promise<void>>();
    let committed = 0;
    let failure: { err: unknown } | undefined;
    for (let k = 0; k < chunks.length && !failure; k++) {
      sign(k);
      let built: BuiltPackage[];
      try {
        built = await signing[k]!;
      } catch (err) {
        failure ??= { err };
        break;
      }
      sign(k + 1);
      const stored: Promise<void> = ds
        .transaction((tx) => storeChunk(tx, chunks[k].items, built, requestId, actor, now))
        .then(
          (outcome) => {
            outcomes[k] = outcome;
            committed += outcome.queued.length;
          },
          (err: unknown) => {
            failure ??= { err };
          },
        )
        .finally(() => storing.delete(stored));
      storing.add(stored);
      while (storing.size >= STORES_IN_FLIGHT && !failure) await Promise.race(storing);
    }
    await Promise.all(storing);
    if (failure) await Promise.allSettled(signing);
    return { outcomes, committed, failure };
  }
}

/** A new queued distribution of `version` to one (listener, target), as a chunk request (rotation queues its new versions with it too). */
export function newRequest(key: KeyEntity, version: KeyVersionEntity, p: { listenerId: string; target: string }, actor: string, now: Date, ref: Omit<DistributionRef, 'distributionId'>): ChunkRequest {
  const row = Object.assign(new DistributionEntity(), {
    id: randomUUID(),
    keyVersionId: version.id,
    listenerId: p.listenerId,
    target: p.target,
    state: 'queued',
    attempts: 1,
    lastPackageId: null,
    lastSentAt: null,
    targetKcv: null,
    errorCode: null,
    errorDetail: null,
    createdBy: actor,
    createdAt: now,
    updatedAt: now,
    confirmedAt: null,
  });
  return { distribution: row, key, version, requeue: false, ref: { distributionId: row.id, ...ref } };
}
