import type { EntityManager } from 'typeorm';

/** Multi-row INSERT in chunks that stay under PostgreSQL's 65,535 bind-parameter limit. */
export async function insertRows(m: EntityManager, table: string, columns: string[], rows: unknown[][]): Promise<void> {
  const perChunk = Math.floor(60_000 / columns.length);
  for (let i = 0; i < rows.length; i += perChunk) {
    const params: unknown[] = [];
    const values = rows
      .slice(i, i + perChunk)
      .map((r) => `(${r.map((v) => (params.push(v), `$${params.length}`)).join(',')})`)
      .join(',');
    await m.query(`INSERT INTO ${table} (${columns.join(',')}) VALUES ${values}`, params);
  }
}

/**
 * Bulk INSERT through unnest: one array parameter per column, however many
 * rows. PostgreSQL parses and plans a handful of arrays far faster than a
 * VALUES list with tens of thousands of bind parameters (used for audit
 * events; the packages, outbox and distribution rows of a push have their
 * own statements, shaped further for that path). `columns` maps each column
 * to its SQL type, which the arrays are cast to.
 */
export async function insertUnnest(m: EntityManager, table: string, columns: Record<string, string>, rows: unknown[][]): Promise<void> {
  if (rows.length === 0) return;
  const names = Object.keys(columns);
  const arrays: unknown[][] = names.map(() => new Array<unknown>(rows.length));
  rows.forEach((row, r) => row.forEach((v, c) => (arrays[c][r] = v)));
  const casts = names.map((n, i) => `$${i + 1}::${columns[n]}[]`).join(', ');
  await m.query(`INSERT INTO ${table} (${names.join(', ')}) SELECT * FROM unnest(${casts})`, arrays);
}
