import type { DataSource } from 'typeorm';
import { verifyAuditChain, type AuditVerification } from '../../audit/verify-audit';
import { hubSigningKey, readAuditEvents, readCheckpoints } from '../../store/queries/audit';

/**
 * Verifies the audit trail in the database: the hash chain, the checkpoint
 * chain, and every checkpoint's signature under `trustedKey`, which callers
 * that decide anything pass from outside the database (the keyring's key from
 * the HSM, or a pinned one). Without it, the key stored at init is used: a
 * consistency check for tests and tools, not evidence against someone who
 * could also rewrite hub_identity. Rule: the first bad event is named.
 */
export async function verifyStoredAudit(ds: DataSource, trustedKey?: Buffer): Promise<AuditVerification> {
  return verifyAuditChain(readAuditEvents(ds), await readCheckpoints(ds), trustedKey ?? (await hubSigningKey(ds)));
}

/** `verifyStoredAudit` as a use case object. */
export class VerifyStoredAudit {
  constructor(private readonly ds: DataSource) {}

  execute(trustedKey?: Buffer): Promise<AuditVerification> {
    return verifyStoredAudit(this.ds, trustedKey);
  }
}
