import type { Queryable } from './queryable';

/*
 * The database roles. The owner role (`ownerDatabaseUrl`) runs migrations
 * and owns every table; the service role (`databaseUrl`, what `keyhub
 * serve` connects as) gets privileges table by table, derived from the
 * catalogue after every migration run, so a table added later is covered.
 */

/** Rows the service may add and read but never change: the audit trail. */
export const APPEND_ONLY_TABLES = ['audit_events', 'audit_checkpoints'] as const;
/** Rows the service only reads: the hub identity (written by init) and the migration history. */
export const READ_ONLY_TABLES = ['hub_identity', 'keyhub_migrations'] as const;

export interface RoleFacts {
  exists: boolean;
  superuser: boolean;
  /** Member of (or the same as) the role running this statement: it would inherit ownership. */
  memberOfCurrent: boolean;
}

export async function roleFacts(m: Queryable, role: string): Promise<RoleFacts> {
  const [row] = await m.query(
    `SELECT r.rolsuper AS superuser, pg_has_role(r.oid, (SELECT oid FROM pg_roles WHERE rolname = current_user), 'MEMBER') AS member
       FROM pg_roles r WHERE r.rolname = $1`,
    [role],
  );
  return row ? { exists: true, superuser: row.superuser === true, memberOfCurrent: row.member === true } : { exists: false, superuser: false, memberOfCurrent: false };
}

/** Tables and sequences of the current schema (where the migrations put them). */
export async function schemaRelations(m: Queryable): Promise<{ schema: string; tables: string[] }> {
  const [{ schema }] = await m.query('SELECT current_schema() AS schema');
  const rows: Array<{ name: string }> = await m.query(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1`,
  );
  return { schema: schema as string, tables: rows.map((r) => r.name) };
}

/** Identifiers are quoted by the server (quote_ident), never by string pasting. */
async function quoted(m: Queryable, ...names: string[]): Promise<string[]> {
  const rows: Array<{ q: string }> = await m.query('SELECT quote_ident(n) AS q FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i', [names]);
  return rows.map((r) => r.q);
}

/**
 * Named statement set `grant-service-role`: revokes everything the role had
 * on the schema's tables and sequences, then grants per table class. No
 * TRUNCATE, TRIGGER or REFERENCES anywhere; DDL needs ownership, which the
 * role never has.
 */
export async function applyServiceGrants(m: Queryable, role: string, schema: string, tables: string[]): Promise<void> {
  const [r, s] = await quoted(m, role, schema);
  await m.query(`GRANT USAGE ON SCHEMA ${s} TO ${r}`);
  await m.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM ${r}`);
  await m.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM ${r}`);
  const appendOnly = new Set<string>(APPEND_ONLY_TABLES);
  const readOnly = new Set<string>(READ_ONLY_TABLES);
  for (const table of tables) {
    const [t] = await quoted(m, table);
    const privileges = appendOnly.has(table) ? 'SELECT, INSERT' : readOnly.has(table) ? 'SELECT' : 'SELECT, INSERT, UPDATE, DELETE';
    await m.query(`GRANT ${privileges} ON ${s}.${t} TO ${r}`);
  }
  await m.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${r}`);
}

/**
 * What the connected role could do to the audit tables beyond INSERT and
 * SELECT: any of UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES, ownership
 * (ALTER, DROP, DISABLE TRIGGER) or superuser. Empty means append-only.
 */
export async function auditRewriteRights(m: Queryable): Promise<string[]> {
  const rows: Array<{ right: string }> = await m.query(
    `SELECT t.name || ': ' || p.priv AS right
       FROM unnest($1::text[]) AS t(name)
       CROSS JOIN unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES']) AS p(priv)
      WHERE to_regclass(t.name) IS NOT NULL AND has_table_privilege(current_user, to_regclass(t.name), p.priv)
     UNION ALL
     SELECT c.relname || ': owner' FROM pg_class c WHERE c.oid = ANY (SELECT to_regclass(n) FROM unnest($1::text[]) AS n) AND pg_has_role(current_user, c.relowner, 'USAGE')
     UNION ALL
     SELECT 'superuser' FROM pg_roles WHERE rolname = current_user AND rolsuper`,
    [APPEND_ONLY_TABLES],
  );
  return rows.map((r) => r.right);
}
