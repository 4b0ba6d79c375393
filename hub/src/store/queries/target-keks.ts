import type { Queryable } from './queryable';

/** A target KEK row (migrations 1733800000000-target-keks.ts, 1733980000000-target-kek-rotation.ts). */
export interface TargetKekRow {
  id: string;
  listener_id: string;
  target: string;
  /** The kind the site's request named (migration 1733990000000); null on rotated versions and rows from before. */
  kind: string | null;
  version: number;
  state: 'requested' | 'pending_confirmation' | 'active' | 'failed' | 'superseded' | 'revoked' | 'retired' | 'destroyed' | 'refused';
  /** Set on a version the site asked for (request, transport key, fingerprint); null on a rotated one. */
  transport_key: Buffer | null;
  oaep_hash: 'sha1' | 'sha256' | null;
  fingerprint: string | null;
  request_id: string | null;
  /** Set on a rotated version: the target KEK it travelled under. */
  wrapped_under: string | null;
  reason: string | null;
  wrapped: Buffer | null;
  kcv: string | null;
  mac: Buffer | null;
  requested_at: Date;
  approved_by: string | null;
  approved_at: Date | null;
  activated_at: Date | null;
}

/** A version the site asked for: its request, transport key and fingerprint are set. */
export type RequestedTargetKekRow = TargetKekRow & { transport_key: Buffer; oaep_hash: 'sha1' | 'sha256'; fingerprint: string; request_id: string };

const COLUMNS =
  'id, listener_id, target, kind, version, state, transport_key, oaep_hash, fingerprint, request_id, wrapped_under, reason, wrapped, kcv, mac, requested_at, approved_by, approved_at, activated_at';

/** `target-kek-by-request`: a request already recorded (the same signed message delivered again). */
export async function targetKekByRequest(m: Queryable, requestId: string): Promise<RequestedTargetKekRow | undefined> {
  const [row] = await m.query(`SELECT ${COLUMNS} FROM target_keks WHERE request_id = $1`, [requestId]);
  return row;
}

/** `next-target-kek-version`: versions grow per (listener, target), whatever became of the earlier ones. */
export async function nextTargetKekVersion(m: Queryable, listenerId: string, target: string): Promise<number> {
  const [row] = await m.query('SELECT coalesce(max(version), 0) + 1 AS v FROM target_keks WHERE listener_id = $1 AND target = $2', [listenerId, target]);
  return Number(row.v);
}

/** `supersede-target-kek-requests`: a newer request replaces one still waiting for approval. */
export async function supersedeRequests(m: Queryable, listenerId: string, target: string): Promise<void> {
  await m.query(`UPDATE target_keks SET state = 'superseded' WHERE listener_id = $1 AND target = $2 AND state = 'requested'`, [listenerId, target]);
}

export async function insertTargetKekRequest(
  m: Queryable,
  r: { id: string; listenerId: string; target: string; kind: string; version: number; transportKey: Buffer; oaepHash: string; fingerprint: string; requestId: string },
): Promise<void> {
  await m.query(`INSERT INTO target_keks (id, listener_id, target, version, state, transport_key, oaep_hash, fingerprint, request_id, kind) VALUES ($1, $2, $3, $4, 'requested', $5, $6, $7, $8, $9)`, [
    r.id,
    r.listenerId,
    r.target,
    r.version,
    r.transportKey,
    r.oaepHash,
    r.fingerprint,
    r.requestId,
    r.kind,
  ]);
}

/** `lock-target-kek-request`: the newest request of a target awaiting approval, locked for the approval's transaction. */
export async function lockPendingRequest(m: Queryable, listenerId: string, target: string): Promise<RequestedTargetKekRow | undefined> {
  const [row] = await m.query(`SELECT ${COLUMNS} FROM target_keks WHERE listener_id = $1 AND target = $2 AND state = 'requested' AND request_id IS NOT NULL ORDER BY version DESC LIMIT 1 FOR UPDATE`, [
    listenerId,
    target,
  ]);
  return row;
}

/** `issue-target-kek`: the approved request gets its KEK (blob under the KEK store, row MAC). */
export async function setTargetKekIssued(m: Queryable, id: string, v: { wrapped: Buffer; kcv: string; mac: Buffer; approvedBy: string }): Promise<void> {
  await m.query(`UPDATE target_keks SET state = 'pending_confirmation', wrapped = $2, kcv = $3, mac = $4, approved_by = $5, approved_at = now() WHERE id = $1 AND state = 'requested'`, [
    id,
    v.wrapped,
    v.kcv,
    v.mac,
    v.approvedBy,
  ]);
}

/** `lock-target-kek`: one KEK of a listener by id, locked. */
export async function lockTargetKek(m: Queryable, listenerId: string, id: string): Promise<TargetKekRow | undefined> {
  const [row] = await m.query(`SELECT ${COLUMNS} FROM target_keks WHERE listener_id = $1 AND id = $2 FOR UPDATE`, [listenerId, id]);
  return row;
}

/**
 * `activate-target-kek`: the confirmed KEK becomes the target's one active
 * KEK; the one before is retired (never wrapped under again; the site keeps
 * it for packages in flight until a later rotation tells it to destroy it).
 */
export async function activateTargetKek(m: Queryable, row: Pick<TargetKekRow, 'id' | 'listener_id' | 'target'>): Promise<Array<{ id: string; version: number }>> {
  const retired: Array<{ id: string; version: number }> = await m.query(
    `WITH u AS (UPDATE target_keks SET state = 'retired' WHERE listener_id = $1 AND target = $2 AND state = 'active' AND id <> $3 RETURNING id, version) SELECT id, version FROM u`,
    [row.listener_id, row.target, row.id],
  );
  await m.query(`UPDATE target_keks SET state = 'active', activated_at = now() WHERE id = $1`, [row.id]);
  return retired;
}

/** `lock-active-target-kek`: the KEK packages for the target are wrapped under now, locked for a rotation. */
export async function lockActiveTargetKek(m: Queryable, listenerId: string, target: string): Promise<TargetKekRow | undefined> {
  const [row] = await m.query(`SELECT ${COLUMNS} FROM target_keks WHERE listener_id = $1 AND target = $2 AND state = 'active' FOR UPDATE`, [listenerId, target]);
  return row;
}

/** `pending-target-kek`: a KEK of the target sent but not confirmed yet (approval or rotation). */
export async function pendingTargetKek(m: Queryable, listenerId: string, target: string): Promise<{ id: string; version: number } | undefined> {
  const [row] = await m.query(`SELECT id, version FROM target_keks WHERE listener_id = $1 AND target = $2 AND state = 'pending_confirmation' ORDER BY version DESC LIMIT 1`, [listenerId, target]);
  return row;
}

/** `target-keks-to-destroy`: versions the site still keeps that are older than `below` (what a rotation under `below` tells it to destroy). */
export async function targetKeksToDestroy(m: Queryable, listenerId: string, target: string, below: number, limit: number): Promise<Array<{ id: string; version: number }>> {
  return m.query(`SELECT id, version FROM target_keks WHERE listener_id = $1 AND target = $2 AND state = 'retired' AND version < $3 ORDER BY version DESC LIMIT $4`, [
    listenerId,
    target,
    below,
    limit,
  ]);
}

/**
 * `target-packages-in-flight-before`: unconfirmed distributions to the target
 * whose last package was issued before `since` (with a minute's margin, as
 * for root KEKs: packages do not record the KEK version in the database).
 */
export async function targetPackagesInFlightBefore(m: Queryable, listenerId: string, target: string, since: Date): Promise<number> {
  const [row] = await m.query(
    `SELECT count(*)::int AS n FROM distributions d JOIN packages p ON p.id = d.last_package_id
      WHERE d.listener_id = $1 AND d.target = $2 AND d.state IN ('queued', 'sent') AND p.issued_at < $3::timestamptz + interval '1 minute'`,
    [listenerId, target, since],
  );
  return Number(row.n);
}

/** `insert-rotated-target-kek`: the next version, sent under the current one, awaiting the site's KCV. */
export async function insertRotatedTargetKek(
  m: Queryable,
  r: { id: string; listenerId: string; target: string; version: number; wrappedUnder: string; wrapped: Buffer; kcv: string; mac: Buffer; approvedBy: string; reason: string | null },
): Promise<void> {
  await m.query(
    `INSERT INTO target_keks (id, listener_id, target, version, state, wrapped_under, wrapped, kcv, mac, approved_by, approved_at, reason)
     VALUES ($1, $2, $3, $4, 'pending_confirmation', $5, $6, $7, $8, $9, now(), $10)`,
    [r.id, r.listenerId, r.target, r.version, r.wrappedUnder, r.wrapped, r.kcv, r.mac, r.approvedBy, r.reason],
  );
}

/** `target-kek-version`: the version of one target KEK (the one a rotation travelled under). */
export async function targetKekVersion(m: Queryable, id: string): Promise<number | undefined> {
  const [row] = await m.query(`SELECT version FROM target_keks WHERE id = $1`, [id]);
  return row ? Number(row.version) : undefined;
}

/** `refuse-target-kek`: a rotation whose KCV the site did not reproduce is never used; its blob goes. */
export async function refuseTargetKek(m: Queryable, id: string): Promise<void> {
  await m.query(`UPDATE target_keks SET state = 'refused', wrapped = NULL WHERE id = $1 AND state = 'pending_confirmation'`, [id]);
}

/**
 * `destroy-retired-target-keks`: once the site confirmed a rotation it has
 * destroyed what that rotation told it to (targetKeksToDestroy as of the
 * rotation); their blobs go on the hub too.
 */
export async function markTargetKeksDestroyed(m: Queryable, ids: string[]): Promise<Array<{ id: string; version: number }>> {
  if (ids.length === 0) return [];
  return m.query(
    `WITH u AS (UPDATE target_keks SET state = 'destroyed', wrapped = NULL WHERE id = ANY($1::uuid[]) AND state = 'retired' RETURNING id, version) SELECT id, version FROM u ORDER BY version`,
    [ids],
  );
}

/**
 * `target-keks-for-packages`: per (listener, target) that has asked for a KEK
 * of its own, the active one if any (else the newest, whose state says why
 * nothing can be wrapped for it). A target listed here never falls back to
 * the root KEK: that KEK is not in its token.
 */
export async function targetKeksForPackages(m: Queryable, listenerIds: string[]): Promise<TargetKekRow[]> {
  return m.query(
    `SELECT DISTINCT ON (listener_id, target) ${COLUMNS} FROM target_keks
      WHERE listener_id = ANY($1) AND state NOT IN ('superseded', 'retired', 'destroyed', 'refused')
      ORDER BY listener_id, target, (state = 'active') DESC, version DESC`,
    [listenerIds],
  );
}

/** `target-keks-of-listener`: the current row of each target (as above), for the operator's view. */
export async function targetKeksOfListener(m: Queryable, listenerId: string): Promise<TargetKekRow[]> {
  return targetKeksForPackages(m, [listenerId]);
}

/** `inventory-counts-by-target`: items per target in the listener's last complete inventory. */
export async function inventoryCountsByTarget(m: Queryable, listenerId: string): Promise<Array<{ target: string; items: number; taken_at: Date }>> {
  const rows: Array<{ target: string; items: string; taken_at: Date }> = await m.query(
    `SELECT i.target, count(*) AS items, li.taken_at FROM listener_inventories li JOIN inventory_items i ON i.report_id = li.report_id AND i.listener_id = li.listener_id
      WHERE li.listener_id = $1 GROUP BY i.target, li.taken_at`,
    [listenerId],
  );
  return rows.map((r) => ({ target: r.target, items: Number(r.items), taken_at: r.taken_at }));
}
