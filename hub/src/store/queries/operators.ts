import type { Queryable } from './queryable';

export interface OperatorRow {
  id: string;
  name: string;
  roles: string[];
  state: 'active' | 'revoked';
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
  active_tokens: number;
}

const OPERATOR_COLUMNS = `o.id, o.name, o.roles, o.state, o.created_at, o.created_by, o.revoked_at,
  (SELECT count(*)::int FROM api_tokens t WHERE t.operator_id = o.id AND t.revoked_at IS NULL AND t.expires_at > now() AND t.secret_hash IS NOT NULL) AS active_tokens`;

export async function insertOperator(m: Queryable, o: { id: string; name: string; roles: string[]; createdBy: string }): Promise<void> {
  await m.query(`INSERT INTO operators (id, name, roles, state, created_by) VALUES ($1, $2, $3, 'active', $4)`, [o.id, o.name, o.roles, o.createdBy]);
}

export async function operatorByName(m: Queryable, name: string, lock = false): Promise<OperatorRow | undefined> {
  const [row] = await m.query(`SELECT ${OPERATOR_COLUMNS} FROM operators o WHERE o.name = $1${lock ? ' FOR UPDATE OF o' : ''}`, [name]);
  return row;
}

export async function operatorById(m: Queryable, id: string): Promise<OperatorRow | undefined> {
  const [row] = await m.query(`SELECT ${OPERATOR_COLUMNS} FROM operators o WHERE o.id = $1`, [id]);
  return row;
}

export async function listOperators(m: Queryable): Promise<OperatorRow[]> {
  return m.query(`SELECT ${OPERATOR_COLUMNS} FROM operators o ORDER BY o.name`);
}

export async function setOperatorRoles(m: Queryable, id: string, roles: string[]): Promise<void> {
  await m.query('UPDATE operators SET roles = $2 WHERE id = $1', [id, roles]);
}

/** Revokes the operator and every token of theirs in one statement each: nothing of theirs works after commit. */
export async function revokeOperator(m: Queryable, id: string, by: string): Promise<void> {
  await m.query(`UPDATE operators SET state = 'revoked', revoked_at = now(), revoked_by = $2 WHERE id = $1 AND state = 'active'`, [id, by]);
  await m.query('UPDATE api_tokens SET revoked_at = now(), revoked_by = $2 WHERE operator_id = $1 AND revoked_at IS NULL', [id, by]);
}

export async function countActiveApprovers(m: Queryable): Promise<number> {
  const [row] = await m.query(`SELECT count(*)::int AS n FROM operators WHERE state = 'active' AND 'approver' = ANY(roles)`);
  return row.n as number;
}

export async function countOperators(m: Queryable): Promise<number> {
  const [row] = await m.query('SELECT count(*)::int AS n FROM operators');
  return row.n as number;
}

export async function countActiveAdmins(m: Queryable): Promise<number> {
  const [row] = await m.query(`SELECT count(*)::int AS n FROM operators WHERE state = 'active' AND 'admin' = ANY(roles)`);
  return row.n as number;
}
