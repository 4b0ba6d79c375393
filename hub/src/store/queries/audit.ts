import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import type { StoredAuditEvent, StoredCheckpoint } from '../../audit/verify-audit';
import { insertUnnest } from './bulk';
import type { Queryable } from './queryable';

/** Arbitrary constant naming the advisory lock that serializes chain appends across hub replicas. */
const AUDIT_LOCK = 0x6b68_0001;

/** Rows per page when the chain is read for verification or export. */
const PAGE = 5000;

/** The chain's lock, held until the caller's transaction ends. */
export async function takeAuditChainLock(m: Queryable): Promise<void> {
  await m.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
}

/** The chain's last event (sequence number as PostgreSQL returns a bigint: text) and its HSM seal, if it has one. */
export async function auditHead(m: Queryable): Promise<{ seq: string; hash: string; seal: Buffer | null } | undefined> {
  const last: Array<{ seq: string; hash: string; seal: Buffer | null }> = await m.query('SELECT seq, hash, seal FROM audit_events ORDER BY seq DESC LIMIT 1');
  return last[0];
}

/** One event: scalars, not one-element arrays, so a large details document is sent as is, not escaped into an array literal. */
export async function insertAuditEvent(m: Queryable, row: unknown[]): Promise<void> {
  await m.query('INSERT INTO audit_events (seq, at, actor, action, subject, details, prev_hash, hash, seal) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)', row);
}

/** Many events in one statement; each row is (seq, at, actor, action, subject, details JSON, prev_hash, hash, seal or null). */
export async function insertAuditEvents(m: EntityManager, rows: unknown[][]): Promise<void> {
  await insertUnnest(m, 'audit_events', { seq: 'bigint', at: 'timestamptz', actor: 'text', action: 'text', subject: 'text', details: 'jsonb', prev_hash: 'text', hash: 'text', seal: 'bytea' }, rows);
}

/** Reads the chain after event `from` in pages, oldest first, so verification runs in bounded memory. */
export async function* readAuditEvents(m: Queryable, from = 0): AsyncGenerator<StoredAuditEvent> {
  let after = from;
  for (;;) {
    const rows: Array<Record<string, unknown>> = await m.query('SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2', [
      after,
      PAGE,
    ]);
    for (const r of rows) {
      yield {
        seq: Number(r.seq),
        at: r.at as Date,
        actor: r.actor as string,
        action: r.action as string,
        subject: r.subject as string,
        details: r.details as StoredAuditEvent['details'],
        prevHash: r.prev_hash as string,
        hash: r.hash as string,
      };
    }
    if (rows.length < PAGE) return;
    after = Number(rows[rows.length - 1].seq);
  }
}

const CHECKPOINT_COLUMNS = 'seq, hash, at, signature, prev_seq, prev_digest';

/** A checkpoint row; chained rows get their signed time and link back, legacy rows (NULL link) only (seq, hash). */
export function checkpointFromRow(r: Record<string, unknown>): StoredCheckpoint {
  const cp: StoredCheckpoint = { seq: Number(r.seq), hash: r.hash as string, signature: r.signature as string };
  if (r.prev_seq === null || r.prev_seq === undefined) return cp;
  return { ...cp, at: (r.at as Date).toISOString(), prevSeq: Number(r.prev_seq), prevDigest: r.prev_digest as string };
}

export async function readCheckpoints(m: Queryable): Promise<StoredCheckpoint[]> {
  const rows: Array<Record<string, unknown>> = await m.query(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq`);
  return rows.map(checkpointFromRow);
}

export async function hubSigningKey(m: Queryable): Promise<Buffer> {
  const [row] = await m.query('SELECT signing_key FROM hub_identity WHERE id = 1');
  if (!row) throw new KeyhubError('NOT_INITIALIZED', 'database holds no hub identity: run `keyhub init`');
  return row.signing_key as Buffer;
}

/** Whether seals are in use here: any sealed event, or any chained checkpoint (made only on a sealed head). */
export async function auditSealsInUse(m: Queryable): Promise<boolean> {
  const [row] = await m.query('SELECT EXISTS (SELECT 1 FROM audit_events WHERE seal IS NOT NULL) OR EXISTS (SELECT 1 FROM audit_checkpoints WHERE prev_seq IS NOT NULL) AS used');
  return row.used === true;
}
