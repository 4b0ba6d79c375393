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

/** The chain's last event (sequence number as PostgreSQL returns a bigint: text). */
export async function auditHead(m: Queryable): Promise<{ seq: string; hash: string } | undefined> {
  const last: Array<{ seq: string; hash: string }> = await m.query('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
  return last[0];
}

/** One event: scalars, not one-element arrays, so a large details document is sent as is, not escaped into an array literal. */
export async function insertAuditEvent(m: Queryable, row: unknown[]): Promise<void> {
  await m.query('INSERT INTO audit_events (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)', row);
}

/** Many events in one statement; each row is (seq, at, actor, action, subject, details JSON, prev_hash, hash). */
export async function insertAuditEvents(m: EntityManager, rows: unknown[][]): Promise<void> {
  await insertUnnest(m, 'audit_events', { seq: 'bigint', at: 'timestamptz', actor: 'text', action: 'text', subject: 'text', details: 'jsonb', prev_hash: 'text', hash: 'text' }, rows);
}

/** Reads the chain in pages, oldest first, so verification runs in bounded memory. */
export async function* readAuditEvents(m: Queryable): AsyncGenerator<StoredAuditEvent> {
  let after = 0;
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

export async function readCheckpoints(m: Queryable): Promise<StoredCheckpoint[]> {
  const rows: Array<Record<string, unknown>> = await m.query('SELECT seq, hash, signature FROM audit_checkpoints ORDER BY seq');
  return rows.map((r) => ({ seq: Number(r.seq), hash: r.hash as string, signature: r.signature as string }));
}

export async function hubSigningKey(m: Queryable): Promise<Buffer> {
  const [row] = await m.query('SELECT signing_key FROM hub_identity WHERE id = 1');
  if (!row) throw new KeyhubError('NOT_INITIALIZED', 'database holds no hub identity: run `keyhub init`');
  return row.signing_key as Buffer;
}

export async function checkpointExists(m: Queryable, seq: number): Promise<boolean> {
  const [done] = await m.query('SELECT 1 FROM audit_checkpoints WHERE seq = $1', [seq]);
  return !!done;
}

export async function insertCheckpoint(m: Queryable, seq: number, hash: string, signature: string): Promise<void> {
  await m.query('INSERT INTO audit_checkpoints (seq, hash, at, signature) VALUES ($1, $2, now(), $3) ON CONFLICT (seq) DO NOTHING', [seq, hash, signature]);
}
