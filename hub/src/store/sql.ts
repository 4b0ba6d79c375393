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

/** Channel the outbox relay LISTENs on; NOTIFY is delivered at commit, so the relay never sees uncommitted rows. */
export const OUTBOX_CHANNEL = 'keyhub_outbox';

export async function notifyOutbox(m: EntityManager): Promise<void> {
  await m.query(`NOTIFY ${OUTBOX_CHANNEL}`);
}
