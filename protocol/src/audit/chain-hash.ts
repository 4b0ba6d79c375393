import { createHash } from 'node:crypto';
import { canonicalBytes } from '../canonical';

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

/**
 * SHA-256 over the previous hash and the RFC 8785 bytes of the record. The
 * canonical bytes are put together around the details' own canonical bytes
 * (`canonicalDetails`, which a caller may compute before it takes the
 * chain's lock): an object's canonical form is its members in key order,
 * each value canonical, so this is byte for byte canonicalBytes(record).
 */
export function auditHash(prevHash: string, record: AuditRecord, canonicalDetails?: Buffer): string {
  const c = (v: string | number): string => JSON.stringify(v);
  // Keys in RFC 8785 order (UTF-16 code units): action, actor, at, details, seq, subject.
  return createHash('sha256')
    .update(prevHash, 'utf8')
    .update(`{"action":${c(record.action)},"actor":${c(record.actor)},"at":${c(record.at.toISOString())},"details":`, 'utf8')
    .update(canonicalDetails ?? canonicalBytes(record.details))
    .update(`,"seq":${canonicalInteger(record.seq)},"subject":${c(record.subject)}}`, 'utf8')
    .digest('hex');
}

function canonicalInteger(n: number): string {
  if (!Number.isSafeInteger(n)) throw new TypeError(`audit sequence ${n} is not a safe integer`);
  return String(n);
}

/** What a checkpoint signature covers. */
export function checkpointBytes(seq: number, hash: string): Buffer {
  return canonicalBytes({ type: 'keyhub.v1.audit_checkpoint', seq, hash });
}
