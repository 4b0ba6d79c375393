import type { EntityManager } from 'typeorm';
import { DistributionEntity } from '../entities';
import type { Queryable } from './queryable';

/** An existing distribution of a key version to a listener target, as distribute reads it. */
export type ExistingDistribution = Pick<DistributionEntity, 'id' | 'keyVersionId' | 'listenerId' | 'target' | 'state'>;

/** A new distribution row of a distribute call. */
export type NewDistribution = Pick<DistributionEntity, 'id' | 'keyVersionId' | 'listenerId' | 'target'>;

/** What a batch of receipts reads per receipt: its distribution (locked) and the key version's KCV. */
export interface ReceiptDistributionRow {
  idx: number;
  id: string;
  state: string;
  last_package_id: string | null;
  attempts: number;
  target: string;
  key_version_id: string;
  kcv: string;
  error_code: string | null;
  /** SHA-256 of the receipt's package as the hub signed it; null for packages issued before hashes were kept. */
  envelope_sha256: Buffer | null;
}

/** Raw rows, not entities: with thousands of destinations, hydration was a visible share of the call. */
export async function findExistingDistributions(m: Queryable, keyVersionIds: string[], listenerIds: string[]): Promise<ExistingDistribution[]> {
  return m.query(
    `SELECT id, key_version_id AS "keyVersionId", listener_id AS "listenerId", target, state FROM distributions
        WHERE key_version_id = ANY($1::uuid[]) AND listener_id = ANY($2::text[])`,
    [keyVersionIds, listenerIds],
  );
}

/**
 * Inserts queued distributions, each with its package id; a row another call
 * inserted meanwhile is left alone. Returns how many were inserted. Per-row
 * values as arrays (ids joined into one string), the rest as scalars: the hot
 * path's cheapest shape.
 */
export async function insertQueuedDistributions(m: Queryable, fresh: NewDistribution[], packageOf: Map<string, string>, actor: string, now: Date): Promise<number> {
  const [{ n }]: Array<{ n: number }> = await m.query(
    `WITH i AS (INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, last_package_id, created_by, created_at, updated_at)
                SELECT u.id, u.kv, u.listener_id, u.target, 'queued', 1, u.pkg, $6, $7, $7
                  FROM unnest(string_to_array($1, ',')::uuid[], string_to_array($2, ',')::uuid[], $3::text[], $4::text[], string_to_array($5, ',')::uuid[])
                       AS u(id, kv, listener_id, target, pkg)
                ON CONFLICT (key_version_id, listener_id, target) DO NOTHING RETURNING 1)
           SELECT count(*)::int AS n FROM i`,
    [
      fresh.map((d) => d.id).join(','),
      fresh.map((d) => d.keyVersionId).join(','),
      fresh.map((d) => d.listenerId),
      fresh.map((d) => d.target),
      fresh.map((d) => packageOf.get(d.id)).join(','),
      actor,
      now,
    ],
  );
  return n;
}

/** Which of `ids` exist. */
export async function existingDistributionIds(m: Queryable, ids: string[]): Promise<string[]> {
  const ours: Array<{ id: string }> = await m.query('SELECT id FROM distributions WHERE id = ANY($1::uuid[])', [ids]);
  return ours.map((r) => r.id);
}

/** Failed (or destroyed-at-the-site) distributions queued afresh with a new package; returns those that were still so. */
export async function requeueFailedDistributions(m: Queryable, ids: string[], packageOf: Map<string, string>, now: Date): Promise<Array<{ id: string }>> {
  return m.query(
    `WITH u AS (UPDATE distributions d SET state = 'queued', attempts = 1, error_code = NULL, error_detail = NULL, updated_at = $3, last_package_id = v.pkg
                 FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::uuid[]) AS pkg) v WHERE d.id = v.id AND d.state IN ('failed', 'destroyed') RETURNING d.id) SELECT id FROM u`,
    [ids, ids.map((id) => packageOf.get(id)), now],
  );
}

/**
 * The distribution of each receipt's package, with its key version's KCV,
 * locked in id order (so concurrent batches cannot deadlock). A receipt
 * whose package does not belong to the listener that sent it finds nothing.
 */
export async function lockReceiptDistributions(m: Queryable, packageIds: string[], listenerIds: string[], idx: number[]): Promise<ReceiptDistributionRow[]> {
  return m.query(
    `SELECT r.idx, d.id, d.state, d.last_package_id, d.attempts, d.target, d.key_version_id, v.kcv, d.error_code, p.envelope_sha256
         FROM unnest($1::uuid[], $2::text[], $3::int[]) AS r(package_id, listener_id, idx)
         JOIN packages p ON p.id = r.package_id AND p.listener_id = r.listener_id
         JOIN distributions d ON d.id = p.distribution_id
         JOIN key_versions v ON v.id = d.key_version_id
        ORDER BY d.id
          FOR UPDATE OF d`,
    [packageIds, listenerIds, idx],
  );
}

/** `cloud`: what a cloud target's receipt says of the import (its ids, state, wrapping); null for other targets. */
export async function confirmDistributions(m: Queryable, confirmed: Array<{ id: string; kcv: string; cloud?: DistributionCloud | null }>): Promise<void> {
  await m.query(
    `UPDATE distributions d SET state = 'confirmed', target_kcv = v.kcv, cloud = v.cloud::jsonb, confirmed_at = now(), updated_at = now(), error_code = NULL, error_detail = NULL
           FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS kcv, unnest($3::text[]) AS cloud) v WHERE d.id = v.id`,
    [confirmed.map((c) => c.id), confirmed.map((c) => c.kcv), confirmed.map((c) => (c.cloud ? JSON.stringify(c.cloud) : null))],
  );
}

/** A cloud receipt's account of the import, as stored with the distribution (`distributions.cloud`, migration 1733990000000). */
export interface DistributionCloud {
  keyId: string;
  versionId: string;
  importState: string;
  wrapping: string;
}

/** `targetKcv` undefined leaves the stored target KCV as it is; null clears it. */
export async function failDistributions(m: Queryable, failed: Array<{ id: string; code: string; detail: string; targetKcv?: string | null }>): Promise<void> {
  await m.query(
    `UPDATE distributions d SET state = 'failed', error_code = v.code, error_detail = v.detail, updated_at = now(),
                target_kcv = CASE WHEN v.set_kcv THEN v.kcv ELSE d.target_kcv END
           FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS code, unnest($3::text[]) AS detail, unnest($4::boolean[]) AS set_kcv, unnest($5::text[]) AS kcv) v
          WHERE d.id = v.id`,
    [failed.map((f) => f.id), failed.map((f) => f.code), failed.map((f) => f.detail), failed.map((f) => f.targetKcv !== undefined), failed.map((f) => f.targetKcv ?? null)],
  );
}

/** Queued again after a receipt asked for a fresh package: one more attempt, the new package, the reason. */
export async function requeueAfterReceipt(m: Queryable, queued: Array<{ id: string; code: string; detail: string }>, packageOf: Map<string, string>): Promise<void> {
  await m.query(
    `UPDATE distributions d SET state = 'queued', attempts = d.attempts + 1, last_package_id = v.pkg, error_code = v.code, error_detail = v.detail, updated_at = now()
           FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::uuid[]) AS pkg, unnest($3::text[]) AS code, unnest($4::text[]) AS detail) v WHERE d.id = v.id`,
    [queued.map((q) => q.id), queued.map((q) => packageOf.get(q.id)), queued.map((q) => q.code), queued.map((q) => q.detail)],
  );
}

/**
 * Sent and not confirmed for longer than the back-off of its attempt
 * (domain/resend-backoff.ts: resendAfterSeconds doubled per attempt, at
 * most 6 times), to a listener heard from within the online window.
 * confirmed_at IS NULL: sent rows never are confirmed; it lets the partial
 * index find them. $1: resendAfterSeconds, $2: onlineWindowSeconds.
 * Only active key versions are sent again (domain/key-lifecycle.ts): a
 * suspended, deactivated, compromised or destroyed one never is.
 */
const dueFilter = `d.confirmed_at IS NULL AND d.state = 'sent'
            AND d.last_sent_at < now() - make_interval(secs => $1 * power(2, LEAST(d.attempts - 1, 6)))
            AND l.last_seen_at > now() - make_interval(secs => $2)
            AND EXISTS (SELECT 1 FROM key_versions kv WHERE kv.id = d.key_version_id AND kv.state = 'active')`;

/** The listeners that have distributions due for a re-send. */
export async function listenersWithDueResends(m: Queryable, resendAfterSeconds: number, onlineWindowSeconds: number): Promise<string[]> {
  const candidates: Array<{ listener_id: string }> = await m.query(`SELECT DISTINCT d.listener_id FROM distributions d JOIN listeners l ON l.id = d.listener_id WHERE ${dueFilter}`, [
    resendAfterSeconds,
    onlineWindowSeconds,
  ]);
  return candidates.map((c) => c.listener_id);
}

/** Claims due distributions of the given listeners, oldest send first; SKIP LOCKED so that hub replicas never claim the same row. */
export async function claimDueResends(m: Queryable, resendAfterSeconds: number, onlineWindowSeconds: number, limit: number, listenerIds: string[]): Promise<Array<{ id: string; attempts: number }>> {
  return m.query(
    `SELECT d.id, d.attempts FROM distributions d JOIN listeners l ON l.id = d.listener_id
          WHERE ${dueFilter} AND d.listener_id = ANY($4)
          ORDER BY d.last_sent_at LIMIT $3
          FOR UPDATE OF d SKIP LOCKED`,
    [resendAfterSeconds, onlineWindowSeconds, limit, listenerIds],
  );
}

export async function failTimedOutDistributions(m: Queryable, ids: string[]): Promise<void> {
  await m.query(`UPDATE distributions SET state = 'failed', error_code = 'TIMEOUT', error_detail = 'no receipt after ' || attempts || ' attempts', updated_at = now() WHERE id = ANY($1)`, [ids]);
}

/** Queued again by the re-send job with a new package: one more attempt. */
export async function requeueResent(m: Queryable, issued: Array<{ distributionId: string; packageId: string }>): Promise<void> {
  await m.query(
    `UPDATE distributions d SET state = 'queued', attempts = d.attempts + 1, last_package_id = v.pkg::uuid, updated_at = now()
             FROM (SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS pkg) v WHERE d.id = v.id::uuid`,
    [issued.map((i) => i.distributionId), issued.map((i) => i.packageId)],
  );
}

export async function findDistributionsByIds(m: EntityManager, ids: string[]): Promise<DistributionEntity[]> {
  return m.findByIds(DistributionEntity, ids);
}

/** The relay published these: queued ones become sent (ids as one comma-separated string, the hot path's shape). */
export async function markDistributionsSent(m: Queryable, ids: string[]): Promise<Array<{ id: string }>> {
  return m.query(
    `WITH u AS (UPDATE distributions SET state = 'sent', last_sent_at = now(), updated_at = now()
                         WHERE id = ANY(string_to_array($1, ',')::uuid[]) AND state = 'queued' RETURNING id)
             SELECT id FROM u`,
    [ids.join(',')],
  );
}

export async function distributionProgressRows(m: Queryable, ids: string[]): Promise<Array<{ id: string; state: string; error_code: string | null }>> {
  return m.query('SELECT id, state, error_code FROM distributions WHERE id = ANY($1::uuid[])', [ids]);
}

/** For the metrics scrape. */
export async function countDistributionsByState(m: Queryable): Promise<Array<{ state: string; n: string }>> {
  return m.query('SELECT state, count(*) AS n FROM distributions GROUP BY state');
}
