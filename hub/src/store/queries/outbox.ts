import type { EntityManager } from 'typeorm';
import { insertRows } from './bulk';
import type { Queryable } from './queryable';

/** Channel the outbox relay LISTENs on; NOTIFY is delivered at commit, so the relay never sees uncommitted rows. */
export const OUTBOX_CHANNEL = 'keyhub_outbox';

/** An outbox row as the relay claims it. */
export interface OutboxRow {
  id: string;
  subject: string;
  msg_id: string;
  payload: Buffer;
  distribution_id: string | null;
}

export async function notifyOutbox(m: Queryable): Promise<void> {
  await m.query(`NOTIFY ${OUTBOX_CHANNEL}`);
}

/** On the relay's own connection: commits that wrote outbox rows notify it. */
export async function listenForOutbox(client: { query(sql: string): Promise<unknown> }): Promise<void> {
  await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
}

/** Rows of (subject, msg_id, payload, distribution_id), for messages that are not key packages. */
export async function insertOutboxMessages(m: EntityManager, rows: unknown[][]): Promise<void> {
  await insertRows(m, 'outbox', ['subject', 'msg_id', 'payload', 'distribution_id'], rows);
}

/**
 * Claims and deletes up to `limit` rows in one statement: the DELETE holds
 * the rows until the caller's transaction ends (other relays skip them), and
 * a failed publish rolls it back. Locking first and deleting after wrote
 * every row twice.
 */
export async function claimOutboxBatch(m: Queryable, limit: number): Promise<OutboxRow[]> {
  return m.query(
    `WITH claimed AS (DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
                           RETURNING id, subject, msg_id, payload, distribution_id)
         SELECT * FROM claimed ORDER BY id`,
    [limit],
  );
}

/** For the metrics scrape: committed messages not yet published. */
export async function countOutbox(m: Queryable): Promise<Array<{ n: string }>> {
  return m.query('SELECT count(*) AS n FROM outbox');
}
