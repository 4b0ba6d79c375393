import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import type { ListenerEntity, ListenerTarget } from '../entities';
import type { Queryable } from './queryable';
import { targetKeksForPackages } from './target-keks';

/** A listener's current root KEK as stored: wrapped under the hub master key. */
export interface StoredKek {
  listener_id: string;
  id: string;
  version: number;
  wrapped: Buffer;
  kcv: string;
  /** Row MAC (crypto/row-mac.ts); checked in the HSM before the blob is unwrapped. */
  mac: Buffer | null;
  /** Set for a target's own KEK (queries/target-keks.ts): its target, and its state (only `active` wraps anything). */
  target?: string;
  targetState?: string;
  /** On a root KEK: the site's approved targets and their kinds (issue 12), checked against each key's policy as packages are built. */
  targets?: ListenerTarget[];
}

/** Key of a target's own KEK in the map loadKeks returns (root KEKs are keyed by listener id alone). */
export const targetKekKey = (listenerId: string, target: string): string => `${listenerId}\u0000${target}`;

/** What distribute needs to know of a listener to expand its destinations. */
export type ListenerTargetsRow = Pick<ListenerEntity, 'id' | 'state' | 'targets'>;

/** Every listener with its backlog (distributions queued or sent), by id. */
export async function listListenersWithBacklog(m: Queryable): Promise<Array<Record<string, unknown>>> {
  return m.query(
    // One pass over the unconfirmed distributions (a partial index keeps that set small), not one per listener.
    `SELECT l.id, l.state, l.fingerprint, l.targets, l.hostname, l.requested_at, l.activated_at, l.last_seen_at, coalesce(b.n, 0) AS backlog
         FROM listeners l
         LEFT JOIN (SELECT listener_id, count(*) AS n FROM distributions WHERE confirmed_at IS NULL AND state IN ('queued', 'sent') GROUP BY listener_id) b ON b.listener_id = l.id
        ORDER BY l.id`,
  );
}

/** For the metrics scrape: backlog and last heartbeat of every listener not revoked. */
export async function listenerBacklogs(m: Queryable): Promise<Array<{ id: string; backlog: string; last_seen: number | null }>> {
  return m.query(
    `SELECT l.id, coalesce(b.n, 0) AS backlog, extract(epoch FROM l.last_seen_at)::float8 AS last_seen
             FROM listeners l
             LEFT JOIN (SELECT listener_id, count(*) AS n FROM distributions WHERE confirmed_at IS NULL AND state IN ('queued', 'sent') GROUP BY listener_id) b ON b.listener_id = l.id
            WHERE l.state <> 'revoked'`,
  );
}

export async function activeListenerTargets(m: Queryable): Promise<ListenerTargetsRow[]> {
  return m.query(`SELECT id, state, targets FROM listeners WHERE state = 'active' ORDER BY id`);
}

export async function listenerTargets(m: Queryable, ids: string[]): Promise<ListenerTargetsRow[]> {
  return m.query('SELECT id, state, targets FROM listeners WHERE id = ANY($1::text[])', [ids]);
}

/** The identity key of a listener that is not revoked. */
export async function listenerIdentityKey(m: Queryable, listenerId: string): Promise<Buffer | undefined> {
  const [row] = await m.query(`SELECT identity_key FROM listeners WHERE id = $1 AND state <> 'revoked'`, [listenerId]);
  return row ? (row.identity_key as Buffer) : undefined;
}

/**
 * Heartbeats: the listeners heard from since the last flush, each with the
 * highest heartbeat sequence heard. A row moves only when that sequence is
 * greater than the one stored, so a replayed heartbeat (whichever hub
 * replica it reaches) moves nothing. Returns the ids that moved.
 */
export async function markListenersSeen(m: Queryable, seen: Array<{ listenerId: string; sequence: number; targets?: unknown[] }>): Promise<string[]> {
  // The per-target health of each heartbeat rides in the same statement (one jsonb per listener), never one write per target.
  const rows: Array<{ id: string }> = await m.query(
    `WITH u AS (UPDATE listeners l SET last_seen_at = now(), heartbeat_seq = v.seq, target_health = coalesce(v.health, l.target_health)
                  FROM (SELECT unnest($1::text[]) AS id, unnest($2::bigint[]) AS seq, unnest($3::jsonb[]) AS health) v
                 WHERE l.id = v.id AND (l.heartbeat_seq IS NULL OR l.heartbeat_seq < v.seq) RETURNING l.id)
     SELECT id FROM u`,
    [seen.map((s) => s.listenerId), seen.map((s) => s.sequence), seen.map((s) => (s.targets ? JSON.stringify(s.targets) : null))],
  );
  return rows.map((r) => r.id);
}

/** Receipts: at most once a second per listener, as concurrent batches would otherwise queue on these row locks. */
export async function markListenersSeenThrottled(m: Queryable, ids: string[]): Promise<void> {
  await m.query(`UPDATE listeners SET last_seen_at = now() WHERE id = ANY($1) AND (last_seen_at IS NULL OR last_seen_at < now() - interval '1 second')`, [ids]);
}

/**
 * Takes a block of sequence numbers per listener (one statement) and returns,
 * per listener, the last number before its block. The counters' rows
 * (listener_sequences, created on first use) stay locked until the caller's
 * transaction ends, so blocks never overlap; they are taken in listener id
 * order, so concurrent calls cannot deadlock. A block that ends up unused
 * (the batch fails) only leaves a gap, which the listener's replay window
 * accepts.
 */
export async function allocateSequences(m: EntityManager, counts: Map<string, number>): Promise<Map<string, number>> {
  const listenerIds = [...counts.keys()].sort();
  const rows: Array<{ listener_id: string; last_sequence: string }> = await m.query(
    `INSERT INTO listener_sequences AS s (listener_id, last_sequence)
     SELECT v.id, v.n FROM unnest($1::text[], $2::int[]) AS v(id, n) ORDER BY v.id
     ON CONFLICT (listener_id) DO UPDATE SET last_sequence = s.last_sequence + EXCLUDED.last_sequence
     RETURNING listener_id, last_sequence`,
    [listenerIds, listenerIds.map((id) => counts.get(id)!)],
  );
  return new Map(rows.map((r) => [r.listener_id, Number(r.last_sequence) - counts.get(r.listener_id)!]));
}

/** The active root KEK of each listener; NOT_ENROLLED when one has none. */
export async function loadKeks(m: Queryable, listenerIds: string[]): Promise<Map<string, StoredKek>> {
  const keks: StoredKek[] = await m.query(
    `SELECT DISTINCT ON (k.listener_id) k.listener_id, k.id, k.version, k.wrapped, k.kcv, k.mac, l.targets FROM keks k JOIN listeners l ON l.id = k.listener_id
      WHERE k.listener_id = ANY($1) AND k.state = 'active' ORDER BY k.listener_id, k.version DESC`,
    [listenerIds],
  );
  const byListener = new Map(keks.map((k) => [k.listener_id, k]));
  const missing = listenerIds.find((id) => !byListener.has(id));
  if (missing) throw new KeyhubError('NOT_ENROLLED', `listener ${missing} has no active root KEK`);
  // Targets with a KEK of their own (issue 12): their packages go under it, never under the root KEK.
  for (const t of await targetKeksForPackages(m, listenerIds)) {
    const kek: StoredKek = { listener_id: t.listener_id, id: t.id, version: t.version, wrapped: t.wrapped ?? Buffer.alloc(0), kcv: t.kcv ?? '', mac: t.mac, target: t.target, targetState: t.state };
    byListener.set(targetKekKey(t.listener_id, t.target), kek);
  }
  return byListener;
}

/** Root KEK rows without a row MAC (the one-time backfill). */
export async function keksWithoutMac(m: Queryable): Promise<StoredKek[]> {
  return m.query('SELECT listener_id, id, version, wrapped, kcv, mac FROM keks WHERE mac IS NULL ORDER BY id');
}

/** A legacy KEK row's blob moved under the KEK store, with its MAC (the one-time backfill). */
export async function setKekBlobAndMac(m: Queryable, id: string, wrapped: Buffer, mac: Buffer): Promise<void> {
  await m.query('UPDATE keks SET wrapped = $2, mac = $3 WHERE id = $1 AND mac IS NULL', [id, wrapped, mac]);
}
