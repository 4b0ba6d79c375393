import type { Queryable } from './queryable';

export interface TokenAuthRow {
  id: string;
  secret_hash: Buffer | null;
  roles: string[] | null;
  expires_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
  operator_id: string;
  operator_name: string;
  operator_roles: string[];
  operator_state: 'active' | 'revoked';
}

export interface TokenRow {
  id: string;
  operator: string;
  roles: string[] | null;
  description: string;
  created_at: Date;
  expires_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

/** What authentication needs about a token, with its operator's standing now. */
export async function tokenForAuth(m: Queryable, id: string): Promise<TokenAuthRow | undefined> {
  const [row] = await m.query(
    `SELECT t.id, t.secret_hash, t.roles, t.expires_at, t.revoked_at, t.last_used_at, o.id AS operator_id, o.name AS operator_name, o.roles AS operator_roles, o.state AS operator_state
       FROM api_tokens t JOIN operators o ON o.id = t.operator_id WHERE t.id = $1`,
    [id],
  );
  return row;
}

export async function insertToken(
  m: Queryable,
  t: { id: string; operatorId: string; secretHash: Buffer | null; roles: string[] | null; description: string; createdBy: string; expiresAt: Date },
): Promise<void> {
  await m.query(`INSERT INTO api_tokens (id, operator_id, secret_hash, roles, description, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
    t.id,
    t.operatorId,
    t.secretHash,
    t.roles,
    t.description,
    t.createdBy,
    t.expiresAt,
  ]);
}

/**
 * Fills in the secret of a token created by an approved request, once: the
 * secret is made at pick-up, so it never rests anywhere on the hub.
 */
export async function setTokenSecretOnce(m: Queryable, id: string, secretHash: Buffer): Promise<boolean> {
  // TypeORM's postgres driver answers UPDATE ... RETURNING with [rows, rowCount].
  const [rows]: [unknown[], number] = await m.query('UPDATE api_tokens SET secret_hash = $2 WHERE id = $1 AND secret_hash IS NULL AND revoked_at IS NULL RETURNING id', [id, secretHash]);
  return rows.length === 1;
}

/** Written at most once a minute per token, so that authentication stays a read. */
export async function touchToken(m: Queryable, id: string): Promise<void> {
  await m.query(`UPDATE api_tokens SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, [id]);
}

export async function revokeToken(m: Queryable, id: string, by: string): Promise<boolean> {
  const [rows]: [unknown[], number] = await m.query('UPDATE api_tokens SET revoked_at = now(), revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id', [id, by]);
  return rows.length === 1;
}

export async function tokenOwner(m: Queryable, id: string): Promise<{ operator_id: string; revoked_at: Date | null } | undefined> {
  const [row] = await m.query('SELECT operator_id, revoked_at FROM api_tokens WHERE id = $1', [id]);
  return row;
}

export async function listTokens(m: Queryable, operatorId: string | null): Promise<TokenRow[]> {
  return m.query(
    `SELECT t.id, o.name AS operator, t.roles, t.description, t.created_at, t.expires_at, t.last_used_at, t.revoked_at
       FROM api_tokens t JOIN operators o ON o.id = t.operator_id
      WHERE t.secret_hash IS NOT NULL AND ($1::uuid IS NULL OR t.operator_id = $1)
      ORDER BY o.name, t.created_at`,
    [operatorId],
  );
}
