import type { Queryable } from './queryable';

/** A target KEK row (migration 1733800000000-target-keks.ts). */
export interface TargetKekRow {
  id: string;
  listener_id: string;
  target: string;
  version: number;
  state: 'requested' | 'pending_confirmation' | 'active' | 'failed' | 'superseded' | 'revoked';
  transport_key: Buffer;
  oaep_hash: 'sha1' | 'sha256';
  fingerprint: string;
  request_id: string;
  wrapped: Buffer | null;
  kcv: string | null;
  mac: Buffer | null;
  requested_at: Date;
  approved_by: string | null;
  approved_at: Date | null;
  activated_at: Date | null;
}

const COLUMNS = 'id, listener_id, target, version, state, transport_key, oaep_hash, fingerprint, request_id, wrapped, kcv, mac, requested_at, approved_by, approved_at, activated_at';

/** `target-kek-by-request`: a request already recorded (the same signed message delivered again). */
export async function targetKekByRequest(m: Queryable, requestId: string): Promise<TargetKekRow | undefined> {
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
  r: { id: string; listenerId: string; target: string; version: number; transportKey: Buffer; oaepHash: string; fingerprint: string; requestId: string },
): Promise<void> {
  await m.query(`INSERT INTO target_keks (id, listener_id, target, version, state, transport_key, oaep_hash, fingerprint, request_id) VALUES ($1, $2, $3, $4, 'requested', $5, $6, $7, $8)`, [
    r.id,
    r.listenerId,
    r.target,
    r.version,
    r.transportKey,
    r.oaepHash,
    r.fingerprint,
    r.requestId,
  ]);
}

/** `lock-target-kek-request`: the newest request of a target awaiting approval, locked for the approval's transaction. */
export async function lockPendingRequest(m: Queryable, listenerId: string, target: string): Promise<TargetKekRow | undefined> {
  const [row] = await m.query(`SELECT ${COLUMNS} FROM target_keks WHERE listener_id = $1 AND target = $2 AND state = 'requested' ORDER BY version DESC LIMIT 1 FOR UPDATE`, [listenerId, target]);
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

/** `activate-target-kek`: the confirmed KEK becomes the target's one active KEK; the one before is superseded. */
export async function activateTargetKek(m: Queryable, row: Pick<TargetKekRow, 'id' | 'listener_id' | 'target'>): Promise<void> {
  await m.query(`UPDATE target_keks SET state = 'superseded' WHERE listener_id = $1 AND target = $2 AND state = 'active' AND id <> $3`, [row.listener_id, row.target, row.id]);
  await m.query(`UPDATE target_keks SET state = 'active', activated_at = now() WHERE id = $1`, [row.id]);
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
      WHERE listener_id = ANY($1) AND state <> 'superseded'
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
