import type { DataSource } from 'typeorm';
import { verifyAuditChain, type AuditVerification } from '../../audit/verify-audit';
import { hubSigningKey, readAuditEvents, readCheckpoints } from '../../store/queries/audit';

/**
 * Verifies the audit trail in the database: the hash chain, and every
 * checkpoint's signature under the hub signing key recorded at init. Rule:
 * the first bad event is named; nothing is trusted because it is stored.
 */
export async function verifyStoredAudit(ds: DataSource): Promise<AuditVerification> {
  return verifyAuditChain(readAuditEvents(ds), await readCheckpoints(ds), await hubSigningKey(ds));
}

/** `verifyStoredAudit` as a use case object. */
export class VerifyStoredAudit {
  constructor(private readonly ds: DataSource) {}

  execute(): Promise<AuditVerification> {
    return verifyStoredAudit(this.ds);
  }
}
