import type { EntityManager } from 'typeorm';
import { canonicalBytes } from '@keyhub/protocol';
import { auditHead, insertAuditEvent, insertAuditEvents, takeAuditChainLock } from '../store/queries/audit';
import { auditHash, GENESIS_HASH, type AuditDetails } from './audit-hash';
import { sealerFor } from './audit-seal';

export interface AuditInput {
  actor: string;
  action: string;
  subject: string;
  details?: AuditDetails;
}

/**
 * Takes the chain's lock for the rest of the transaction (re-entrant). A
 * transaction that will lock rows and then append should take it first, so
 * that every appender locks in the same order.
 */
export async function lockAuditChain(manager: EntityManager): Promise<void> {
  if (!manager.queryRunner?.isTransactionActive) throw new Error('the audit chain lock needs a transaction');
  await takeAuditChainLock(manager);
}

/**
 * Appends events to the hash chain inside the caller's transaction, so an
 * action and its audit record commit or fail together. The advisory lock
 * orders concurrent appenders; it is released at commit. The details'
 * canonical bytes and JSON are made before the lock is taken: a chunk of
 * 1,000 distributions has ~150 KB of details, and every other appender waits
 * while the lock is held. With a sealer registered for the data source (the
 * composition root does), the head must carry this hub's HSM seal before
 * anything is chained onto it, and the new head is sealed (audit-seal.ts):
 * on a rewritten chain every append fails with AUDIT_CHAIN_BROKEN.
 */
export async function appendAudit(manager: EntityManager, events: AuditInput[]): Promise<void> {
  if (events.length === 0) return;
  const prepared = events.map((e) => {
    const details = e.details ?? {};
    return { e, details, canonical: canonicalBytes(details), json: JSON.stringify(details) };
  });
  await lockAuditChain(manager);
  const last = await auditHead(manager);
  // Never chain onto a head this hub did not write: appending would seal someone else's rewrite.
  const sealer = sealerFor(manager);
  if (sealer && last) await sealer.assertHead(manager, last);
  let seq = last ? Number(last.seq) : 0;
  let prev = last ? last.hash : GENESIS_HASH;
  // Millisecond precision on purpose: it survives the timestamptz round trip unchanged.
  const at = new Date(Math.floor(Date.now()));
  const rows: unknown[][] = [];
  for (const { e, details, canonical, json } of prepared) {
    seq += 1;
    const hash = auditHash(prev, { seq, at, actor: e.actor, action: e.action, subject: e.subject, details }, canonical);
    rows.push([seq, at, e.actor, e.action, e.subject, json, prev, hash, null]);
    prev = hash;
  }
  // One HSM seal per append, on its last event: the chain carries it back over the others (audit-seal.ts).
  if (sealer) rows[rows.length - 1][8] = await sealer.seal(seq, prev);
  if (rows.length === 1) {
    await insertAuditEvent(manager, rows[0]);
    return;
  }
  await insertAuditEvents(manager, rows);
}
