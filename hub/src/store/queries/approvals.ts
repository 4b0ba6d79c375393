import type { Queryable } from './queryable';

export interface PolicyRow {
  action: string;
  required: number;
  enabled: boolean;
  updated_at: Date | null;
  updated_by: string | null;
}

export interface RequestRow {
  id: string;
  action: string;
  canonical: Buffer;
  hash: string;
  required: number;
  requested_by: string;
  requested_by_name: string;
  created_at: Date;
  expires_at: Date;
  state: string;
  decided_at: Date | null;
  result: Record<string, string | number | boolean> | null;
  error_code: string | null;
}

export interface DecisionRow {
  operator_id: string;
  operator_name: string;
  decision: 'approve' | 'reject';
  request_hash: string;
  created_at: Date;
  expires_at: Date;
  operator_state: string;
  operator_roles: string[];
}

export async function policyFor(m: Queryable, action: string): Promise<PolicyRow | undefined> {
  const [row] = await m.query('SELECT action, required, enabled, updated_at, updated_by FROM approval_policies WHERE action = $1', [action]);
  return row;
}

export async function listPolicies(m: Queryable): Promise<PolicyRow[]> {
  return m.query('SELECT action, required, enabled, updated_at, updated_by FROM approval_policies ORDER BY action');
}

/** Policy changes are serialized on the row (or on the action, for the first change): two changes cannot interleave. */
export async function lockPolicy(m: Queryable, action: string): Promise<void> {
  await m.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`keyhub.policy.${action}`]);
}

export async function upsertPolicy(m: Queryable, p: { action: string; required: number; enabled: boolean; by: string }): Promise<void> {
  await m.query(
    `INSERT INTO approval_policies (action, required, enabled, updated_at, updated_by) VALUES ($1, $2, $3, now(), $4)
     ON CONFLICT (action) DO UPDATE SET required = EXCLUDED.required, enabled = EXCLUDED.enabled, updated_at = now(), updated_by = EXCLUDED.updated_by`,
    [p.action, p.required, p.enabled, p.by],
  );
}

export async function insertRequest(m: Queryable, r: { id: string; action: string; canonical: Buffer; hash: string; required: number; requestedBy: string; expiresAt: Date }): Promise<void> {
  await m.query(`INSERT INTO approval_requests (id, action, canonical, hash, required, requested_by, expires_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')`, [
    r.id,
    r.action,
    r.canonical,
    r.hash,
    r.required,
    r.requestedBy,
    r.expiresAt,
  ]);
}

const REQUEST_COLUMNS = `r.id, r.action, r.canonical, r.hash, r.required, r.requested_by, o.name AS requested_by_name, r.created_at, r.expires_at, r.state, r.decided_at, r.result, r.error_code`;

export async function requestById(m: Queryable, id: string, lock = false): Promise<RequestRow | undefined> {
  const [row] = await m.query(`SELECT ${REQUEST_COLUMNS} FROM approval_requests r JOIN operators o ON o.id = r.requested_by WHERE r.id = $1${lock ? ' FOR UPDATE OF r' : ''}`, [id]);
  return row;
}

export async function listRequests(m: Queryable, state: string | null, limit: number): Promise<RequestRow[]> {
  return m.query(
    `SELECT ${REQUEST_COLUMNS} FROM approval_requests r JOIN operators o ON o.id = r.requested_by
      WHERE ($1::text IS NULL OR r.state = $1) ORDER BY r.created_at DESC LIMIT $2`,
    [state, limit],
  );
}

/** Decisions with each decider's standing now: the quorum is counted on these at execution. */
export async function decisionsFor(m: Queryable, requestIds: string[]): Promise<Array<DecisionRow & { request_id: string }>> {
  return m.query(
    `SELECT d.request_id, d.operator_id, o.name AS operator_name, d.decision, d.request_hash, d.created_at, d.expires_at, o.state AS operator_state, o.roles AS operator_roles
       FROM approval_decisions d JOIN operators o ON o.id = d.operator_id
      WHERE d.request_id = ANY($1::uuid[]) ORDER BY d.created_at`,
    [requestIds],
  );
}

/** False when this operator has decided on this request already. */
export async function insertDecision(m: Queryable, d: { requestId: string; operatorId: string; decision: 'approve' | 'reject'; requestHash: string; expiresAt: Date }): Promise<boolean> {
  const rows: unknown[] = await m.query(
    `INSERT INTO approval_decisions (request_id, operator_id, decision, request_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (request_id, operator_id) DO NOTHING RETURNING request_id`,
    [d.requestId, d.operatorId, d.decision, d.requestHash, d.expiresAt],
  );
  return rows.length === 1;
}

export async function finishRequest(m: Queryable, id: string, state: string, result: Record<string, string | number | boolean> | null, errorCode: string | null): Promise<void> {
  await m.query('UPDATE approval_requests SET state = $2, decided_at = now(), result = $3, error_code = $4 WHERE id = $1', [id, state, result === null ? null : JSON.stringify(result), errorCode]);
}
