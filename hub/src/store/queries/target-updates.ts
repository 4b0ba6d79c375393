import type { Queryable } from './queryable';

/** A signed target update as stored (migration 1733900000000). */
export interface TargetUpdateRow {
  id: string;
  listener_id: string;
  request_id: string;
  op: 'add' | 'remove';
  target: string;
  kind: string;
  settings: Record<string, string>;
  state: 'requested' | 'approved' | 'superseded';
  requested_at: Date;
  approved_by: string | null;
  approved_at: Date | null;
}

const COLUMNS = 'id, listener_id, request_id, op, target, kind, settings, state, requested_at, approved_by, approved_at';

/** `target-update-by-request`: the row a signed update made (the same update delivered twice is recorded once). */
export async function targetUpdateByRequest(m: Queryable, requestId: string): Promise<TargetUpdateRow | undefined> {
  const [row] = await m.query(`SELECT ${COLUMNS} FROM target_updates WHERE request_id = $1`, [requestId]);
  return row;
}

/** `supersede-target-updates`: a newer update for a target replaces one still awaiting approval. */
export async function supersedeTargetUpdates(m: Queryable, listenerId: string, target: string): Promise<void> {
  await m.query(`UPDATE target_updates SET state = 'superseded' WHERE listener_id = $1 AND target = $2 AND state = 'requested'`, [listenerId, target]);
}

export async function insertTargetUpdate(
  m: Queryable,
  u: { id: string; listenerId: string; requestId: string; op: string; target: string; kind: string; settings: Record<string, string> },
): Promise<void> {
  await m.query(`INSERT INTO target_updates (id, listener_id, request_id, op, target, kind, settings, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'requested')`, [
    u.id,
    u.listenerId,
    u.requestId,
    u.op,
    u.target,
    u.kind,
    JSON.stringify(u.settings),
  ]);
}

/** `lock-requested-target-update`: the update awaiting approval for a target, locked for the approval's transaction. */
export async function lockRequestedTargetUpdate(m: Queryable, listenerId: string, target: string): Promise<TargetUpdateRow | undefined> {
  const [row] = await m.query(`SELECT ${COLUMNS} FROM target_updates WHERE listener_id = $1 AND target = $2 AND state = 'requested' FOR UPDATE`, [listenerId, target]);
  return row;
}

export async function setTargetUpdateApproved(m: Queryable, id: string, approvedBy: string): Promise<void> {
  await m.query(`UPDATE target_updates SET state = 'approved', approved_by = $2, approved_at = now() WHERE id = $1`, [id, approvedBy]);
}

/** `requested-target-updates`: every update awaiting approval at one listener (the operator's view). */
export async function requestedTargetUpdates(m: Queryable, listenerId: string): Promise<TargetUpdateRow[]> {
  return m.query(`SELECT ${COLUMNS} FROM target_updates WHERE listener_id = $1 AND state = 'requested' ORDER BY target`, [listenerId]);
}

/** `held-target`: whether a target not approved at the site is awaiting approval or was removed (for the refusal's code). */
export async function isHeldTarget(m: Queryable, listenerId: string, target: string): Promise<boolean> {
  const [row] = await m.query(`SELECT 1 FROM target_updates WHERE listener_id = $1 AND target = $2 AND ((state = 'requested' AND op = 'add') OR (state = 'approved' AND op = 'remove')) LIMIT 1`, [
    listenerId,
    target,
  ]);
  return row !== undefined;
}

/**
 * `retire-target-distributions`: a removed target's distributions still in
 * flight or failed become superseded (no re-send, no receipt changes them);
 * confirmed ones stay as the record of what arrived there. Their packages
 * not yet published leave the outbox in the same statement, so nothing
 * reaches the target after the removal is approved.
 */
export async function retireTargetDistributions(m: Queryable, listenerId: string, target: string): Promise<number> {
  const [row]: Array<{ n: number }> = await m.query(
    `WITH u AS (UPDATE distributions SET state = 'superseded', updated_at = now() WHERE listener_id = $1 AND target = $2 AND state IN ('queued', 'sent', 'failed') RETURNING id),
          o AS (DELETE FROM outbox WHERE distribution_id IN (SELECT id FROM u))
     SELECT count(*)::int AS n FROM u`,
    [listenerId, target],
  );
  return row.n;
}

/** `revoke-target-keks`: a removed target's own KEKs wrap nothing any more. */
export async function revokeTargetKeks(m: Queryable, listenerId: string, target: string): Promise<number> {
  const [row]: Array<{ n: number }> = await m.query(
    `WITH u AS (UPDATE target_keks SET state = 'revoked' WHERE listener_id = $1 AND target = $2 AND state IN ('requested', 'pending_confirmation', 'active', 'failed', 'retired') RETURNING id)
     SELECT count(*)::int AS n FROM u`,
    [listenerId, target],
  );
  return row.n;
}
