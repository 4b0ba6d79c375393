import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { In, type EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../audit/audit-log';
import type { AuditValue } from '../audit/audit-hash';
import { HubContext } from '../context';
import { DistributionEntity, KeyEntity, KeyVersionEntity, ListenerEntity } from '../store/entities';
import { allocateSequences, assignSequences, countByListener, loadKeks, signPackages, storePackages, type BuiltPackage, type PackageRequest } from './package-issuer';

export interface Destination {
  listenerId: string;
  /** Omitted: every target of the listener. */
  target?: string;
}

export interface KeySelector {
  name: string;
  /** Omitted: the key's current version. */
  version?: number;
}

export interface DistributeInput {
  /** Named keys, or every key whose name starts with `prefix` (current versions). */
  keys: KeySelector[] | { prefix: string };
  /** 'all': every target of every active listener. */
  to: Destination[] | 'all';
  actor: string;
}

export interface DistributionRef {
  distributionId: string;
  key: string;
  version: number;
  listenerId: string;
  target: string;
}

export interface DistributeResult {
  keys: Array<{ name: string; version: number; kcv: string }>;
  queued: DistributionRef[];
  skipped: Array<DistributionRef & { state: string }>;
}

/** What one chunk's transaction queued, and what it found queued by another call meanwhile. */
type ChunkOutcome = Pick<DistributeResult, 'queued' | 'skipped'>;

/** Chunk transactions of one call that run at the same time. */
const STORES_IN_FLIGHT = 2;

/**
 * One call for any fan-out (one key to every site, many keys to one site).
 * Pushing a key again where it is confirmed or in flight changes nothing;
 * where it failed, it is queued afresh.
 *
 * The work runs as a pipeline of chunks (at most `delivery.issueBatch` packages):
 * while two chunks' rows are written and committed, the HSM wraps and signs
 * the next, and the outbox relay already publishes the chunks before. Each
 * chunk commits its distribution rows, signed packages, outbox rows and
 * audit events together. If a chunk fails, no further chunk starts; the
 * chunks committed stay queued and the error says how many; the call is
 * idempotent, so running it again queues the rest.
 */
@injectable()
export class Distribute {
  constructor(private readonly ctx: HubContext) {}

  async execute(input: DistributeInput): Promise<DistributeResult> {
    const { ds, keyring, config } = this.ctx;
    const m = ds.manager;
    const selected = await this.resolveKeys(m, input.keys);
    const pairs = await this.resolveDestinations(m, input.to);
    // Raw rows, not entities: with thousands of destinations, hydration was a visible share of the call.
    const existing: Array<Pick<DistributionEntity, 'id' | 'keyVersionId' | 'listenerId' | 'target' | 'state'>> = await m.query(
      `SELECT id, key_version_id AS "keyVersionId", listener_id AS "listenerId", target, state FROM distributions
        WHERE key_version_id = ANY($1::uuid[]) AND listener_id = ANY($2::text[])`,
      [selected.map((s) => s.version.id), [...new Set(pairs.map((p) => p.listenerId))]],
    );
    const byTriple = new Map(existing.map((d) => [`${d.keyVersionId}/${d.listenerId}/${d.target}`, d]));

    const now = new Date();
    const requests: Array<PackageRequest & { requeue: boolean; ref: DistributionRef }> = [];
    const result: DistributeResult = { keys: selected.map((s) => ({ name: s.key.name, version: s.version.version, kcv: s.version.kcv })), queued: [], skipped: [] };
    for (const { key, version } of selected) {
      for (const p of pairs) {
        const d = byTriple.get(`${version.id}/${p.listenerId}/${p.target}`);
        const ref = { key: key.name, version: version.version, listenerId: p.listenerId, target: p.target };
        if (!d) {
          const row = Object.assign(new DistributionEntity(), {
            id: randomUUID(), keyVersionId: version.id, listenerId: p.listenerId, target: p.target, state: 'queued', attempts: 1,
            lastPackageId: null, lastSentAt: null, targetKcv: null, errorCode: null, errorDetail: null, createdBy: input.actor,
            createdAt: now, updatedAt: now, confirmedAt: null,
          });
          requests.push({ distribution: row, key, version, requeue: false, ref: { distributionId: row.id, ...ref } });
        } else if (d.state === 'failed') {
          const row = Object.assign(new DistributionEntity(), d);
          requests.push({ distribution: row, key, version, requeue: true, ref: { distributionId: d.id, ...ref } });
        } else {
          result.skipped.push({ distributionId: d.id, ...ref, state: d.state });
        }
      }
    }
    if (requests.length === 0) return result;

    // The KEKs first; the sequence blocks for the whole call in their own short transaction,
    // which runs while the HSM already wraps the first chunks (only the payloads need them).
    const counts = countByListener(requests);
    const keks = await loadKeks(m, [...counts.keys()]);
    const sequences = ds.transaction((tx) => allocateSequences(tx, counts)).then((before) => assignSequences(requests, before));
    sequences.catch(() => undefined);

    // Names this call in the audit trail: every chunk's event has it as subject.
    const requestId = randomUUID();
    // At least ~8 chunks when there is enough work, so that the first ones are published while
    // the last are still being signed; never more than issueBatch, never below 100 (each chunk
    // costs a transaction, a signature and the unwraps of its keys and KEKs).
    const size = Math.min(config.delivery.issueBatch, Math.max(100, Math.ceil(requests.length / 8)));
    const chunks: Array<{ from: number; requests: typeof requests }> = [];
    for (let i = 0; i < requests.length; i += size) chunks.push({ from: i, requests: requests.slice(i, i + size) });
    // The next chunk is signed while this one is stored. (Signing two at a time, to fill the
    // sessions' idle moments between steps, measured slower: the CPU is already the limit.)
    const signing: Array<Promise<BuiltPackage[]> | undefined> = [];
    const sign = (k: number): void => {
      if (k >= chunks.length || signing[k]) return;
      const c = chunks[k];
      const p = signPackages(keyring, c.requests, keks, sequences.then((all) => all.slice(c.from, c.from + c.requests.length)), config.delivery.packageTtlSeconds);
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
      const stored: Promise<void> = this.store(chunks[k].requests, built, requestId, input.actor, now)
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
    for (const o of outcomes) {
      if (!o) continue;
      result.queued.push(...o.queued);
      result.skipped.push(...o.skipped);
    }
    if (failure) {
      await Promise.allSettled(signing);
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

  /** One chunk's transaction. A distribution another call queued meanwhile is skipped (its package is dropped unsent). */
  private async store(chunk: Array<PackageRequest & { requeue: boolean; ref: DistributionRef }>, built: BuiltPackage[], requestId: string, actor: string, now: Date): Promise<ChunkOutcome> {
    const result: ChunkOutcome = { queued: [], skipped: [] };
    return this.ctx.ds.transaction(async (m) => {
      const requeue = chunk.filter((r) => r.requeue).map((r) => r.distribution.id);
      // Lock order of every writer is the audit chain, then distribution rows. New rows are
      // nobody else's, so the chain is locked only at the end unless existing rows change.
      if (requeue.length) await lockAuditChain(m);
      const packageOf = new Map(built.map((b) => [b.distributionId, b.packageId]));
      const fresh = chunk.filter((r) => !r.requeue).map((r) => r.distribution);
      let inserted: string[] = [];
      if (fresh.length) {
        // Per-row values as arrays (ids joined into one string), the rest as scalars: the hot path's cheapest shape.
        const [{ n }]: Array<{ n: number }> = await m.query(
          `WITH i AS (INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, last_package_id, created_by, created_at, updated_at)
                SELECT u.id, u.kv, u.listener_id, u.target, 'queued', 1, u.pkg, $6, $7, $7
                  FROM unnest(string_to_array($1, ',')::uuid[], string_to_array($2, ',')::uuid[], $3::text[], $4::text[], string_to_array($5, ',')::uuid[])
                       AS u(id, kv, listener_id, target, pkg)
                ON CONFLICT (key_version_id, listener_id, target) DO NOTHING RETURNING 1)
           SELECT count(*)::int AS n FROM i`,
          [
            fresh.map((d) => d.id).join(','), fresh.map((d) => d.keyVersionId).join(','), fresh.map((d) => d.listenerId), fresh.map((d) => d.target),
            fresh.map((d) => packageOf.get(d.id)).join(','), actor, now,
          ],
        );
        inserted = fresh.map((d) => d.id);
        if (n !== fresh.length) {
          // Another call queued some of these meanwhile: keep only the rows that are ours.
          const ours: Array<{ id: string }> = await m.query('SELECT id FROM distributions WHERE id = ANY($1::uuid[])', [inserted]);
          inserted = ours.map((r) => r.id);
        }
      }
      const requeued: Array<{ id: string }> = requeue.length
        ? await m.query(
            `WITH u AS (UPDATE distributions d SET state = 'queued', attempts = 1, error_code = NULL, error_detail = NULL, updated_at = $3, last_package_id = v.pkg
                 FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::uuid[]) AS pkg) v WHERE d.id = v.id AND d.state = 'failed' RETURNING d.id) SELECT id FROM u`,
            [requeue, requeue.map((id) => packageOf.get(id)), now],
          )
        : [];
      const kept = new Set([...inserted, ...requeued.map((r) => r.id)]);
      await storePackages(m, built.filter((b) => kept.has(b.distributionId)));
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
    });
  }

  private async resolveKeys(m: EntityManager, keys: DistributeInput['keys']): Promise<Array<{ key: KeyEntity; version: KeyVersionEntity }>> {
    let found: KeyEntity[];
    const wanted = new Map<string, number | undefined>();
    if ('prefix' in keys) {
      if (!keys.prefix) throw new KeyhubError('INPUT_INVALID', 'key prefix must not be empty');
      found = await m.createQueryBuilder(KeyEntity, 'k').where('k.name LIKE :p', { p: `${keys.prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%` }).orderBy('k.name').getMany();
      if (found.length === 0) throw new KeyhubError('KEY_NOT_FOUND', `no key name starts with "${keys.prefix}"`);
    } else {
      if (keys.length === 0) throw new KeyhubError('INPUT_INVALID', 'no key given');
      for (const k of keys) wanted.set(k.name, k.version);
      const byName = new Map((await m.find(KeyEntity, { where: { name: In([...wanted.keys()]) } })).map((k) => [k.name, k]));
      const missing = [...wanted.keys()].find((n) => !byName.has(n));
      if (missing) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${missing}"`);
      // In the order given: packages are issued in that order, and the result lists them so.
      found = [...wanted.keys()].map((n) => byName.get(n)!);
    }
    const versionOf = (k: KeyEntity) => wanted.get(k.name) ?? k.currentVersion;
    const versions: KeyVersionEntity[] = await m.query(
      `SELECT v.id, v.key_id AS "keyId", v.version, v.wrapped, v.length, v.kcv, v.state
         FROM key_versions v JOIN (SELECT unnest($1::uuid[]) AS key_id, unnest($2::int[]) AS version) w
           ON v.key_id = w.key_id AND v.version = w.version`,
      [found.map((k) => k.id), found.map(versionOf)],
    );
    const byKey = new Map(versions.map((v) => [v.keyId, v]));
    return found.map((key) => {
      const version = byKey.get(key.id);
      if (!version) throw new KeyhubError('KEY_NOT_FOUND', `key "${key.name}" has no version ${versionOf(key)}`);
      if (version.state !== 'active') throw new KeyhubError('INPUT_INVALID', `version ${version.version} of "${key.name}" is ${version.state}`);
      return { key, version };
    });
  }

  private async resolveDestinations(m: EntityManager, to: Destination[] | 'all'): Promise<Array<{ listenerId: string; target: string }>> {
    type Row = Pick<ListenerEntity, 'id' | 'state' | 'targets'>;
    if (to === 'all') {
      const active: Row[] = await m.query(`SELECT id, state, targets FROM listeners WHERE state = 'active' ORDER BY id`);
      if (active.length === 0) throw new KeyhubError('LISTENER_NOT_FOUND', 'no active listeners');
      return active.flatMap((l) => l.targets.map((t) => ({ listenerId: l.id, target: t.name })));
    }
    if (to.length === 0) throw new KeyhubError('INPUT_INVALID', 'no destination given');
    const ids = [...new Set(to.map((d) => d.listenerId))];
    const rows: Row[] = await m.query('SELECT id, state, targets FROM listeners WHERE id = ANY($1::text[])', [ids]);
    const found = new Map(rows.map((l) => [l.id, l]));
    const pairs: Array<{ listenerId: string; target: string }> = [];
    const seen = new Set<string>();
    for (const d of to) {
      const l = found.get(d.listenerId);
      if (!l) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${d.listenerId}`);
      if (l.state !== 'active') throw new KeyhubError('NOT_ENROLLED', `listener ${d.listenerId} is ${l.state}, not active`);
      const targets = d.target === undefined ? l.targets.map((t) => t.name) : [d.target];
      for (const t of targets) {
        if (!l.targets.some((x) => x.name === t)) throw new KeyhubError('TARGET_UNKNOWN', `listener ${d.listenerId} has no target ${t}`);
        const k = `${d.listenerId}/${t}`;
        if (!seen.has(k)) pairs.push({ listenerId: d.listenerId, target: t });
        seen.add(k);
      }
    }
    return pairs;
  }
}
