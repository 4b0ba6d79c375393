import type { EntityManager } from 'typeorm';
import { insertUnnest } from '../store/sql';
import { canonicalBytes } from '@keyhub/protocol';
import { auditHash, GENESIS_HASH, type AuditDetails } from './audit-hash';

export interface AuditInput {
  actor: string;
  action: string;
  subject: string;
  details?: AuditDetails;
}

/** Arbitrary constant naming the advisory lock that serializes chain appends across hub replicas. */
const AUDIT_LOCK = 0x6b68_0001;

/**
 * Takes the chain's lock for the rest of the transaction (re-entrant). A
 * transaction that will lock rows and then append should take it first, so
 * that every appender locks in the same order.
 */
export async function lockAuditChain(manager: EntityManager): Promise<void> {
  if (!manager.queryRunner?.isTransactionActive) throw new Error('the audit chain lock needs a transaction');
  await manager.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
}

/**
 * Appends events to the hash chain inside the caller's transaction, so an
 * action and its audit record commit or fail together. The advisory lock
 * orders concurrent appenders; it is released at commit. The details'
 * canonical bytes and JSON are made before the lock is taken: a chunk of
 * 1,000 distributions has ~150 KB of details, and every other appender waits
 * while the lock is held.
 */
export async function appendAudit(manager: EntityManager, events: AuditInput[]): Promise<void> {
  if (events.length === 0) return;
  const prepared = events.map((e) => {
    const details = e.details ?? {};
    return { e, details, canonical: canonicalBytes(details), json: JSON.stringify(details) };
  });
  await lockAuditChain(manager);
  const last: Array<{ seq: string; hash: string }> = await manager.query('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
  let seq = last.length ? Number(last[0].seq) : 0;
  let prev = last.length ? last[0].hash : GENESIS_HASH;
  // Millisecond precision on purpose: it survives the timestamptz round trip unchanged.
  const at = new Date(Math.floor(Date.now()));
  const rows: unknown[][] = [];
  for (const { e, details, canonical, json } of prepared) {
    seq += 1;
    const hash = auditHash(prev, { seq, at, actor: e.actor, action: e.action, subject: e.subject, details }, canonical);
    rows.push([seq, at, e.actor, e.action, e.subject, json, prev, hash]);
    prev = hash;
  }
  if (rows.length === 1) {
    // Scalars, not one-element arrays: a large details document is then sent as is, not escaped into an array literal.
    await manager.query('INSERT INTO audit_events (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)', rows[0]);
    return;
  }
  await insertUnnest(
    manager,
    'audit_events',
    { seq: 'bigint', at: 'timestamptz', actor: 'text', action: 'text', subject: 'text', details: 'jsonb', prev_hash: 'text', hash: 'text' },
    rows,
  );
}
