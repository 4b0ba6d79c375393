import { createHash } from 'node:crypto';
import { canonicalBytes } from '@keyhub/protocol';

export const GENESIS_HASH = '0'.repeat(64);

/** JSON as stored in the jsonb column: no undefined, numbers that survive a round trip (integers here). */
export type AuditValue = string | number | boolean | null | AuditValue[] | { [key: string]: AuditValue };
export type AuditDetails = Record<string, AuditValue>;

/** What is hashed: every column but the hashes themselves. */
export interface AuditRecord {
  seq: number;
  at: Date;
  actor: string;
  action: string;
  subject: string;
  details: AuditDetails;
}

export function auditHash(prevHash: string, record: AuditRecord): string {
  const body = canonicalBytes({
    seq: record.seq,
    at: record.at.toISOString(),
    actor: record.actor,
    action: record.action,
    subject: record.subject,
    details: record.details,
  });
  return createHash('sha256').update(prevHash, 'utf8').update(body).digest('hex');
}

/** What a checkpoint signature covers. */
export function checkpointBytes(seq: number, hash: string): Buffer {
  return canonicalBytes({ type: 'keyhub.v1.audit_checkpoint', seq, hash });
}
