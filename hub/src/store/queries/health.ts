import type { Queryable } from './queryable';

/** A round trip to PostgreSQL, for readiness. */
export async function pingDatabase(m: Queryable): Promise<void> {
  await m.query('SELECT 1');
}

/** Whether the database holds the keyhub schema at all (its hub_identity table). */
export async function hubSchemaPresent(m: Queryable): Promise<boolean> {
  const [row] = await m.query(`SELECT to_regclass('hub_identity') IS NOT NULL AS present`);
  return !!row?.present;
}
