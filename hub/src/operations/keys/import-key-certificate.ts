import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { checkChain, pemCertificates } from '../../crypto/ca/chain-check';
import { normalizeSerial } from '../../crypto/ca/certificate-parts';
import type { Principal } from '../../domain/principal';
import { findVersionCertificate, setVersionCertificate } from '../../store/queries/key-certificates';
import { certificateView, loadCertifiable, verifiedPublicKey } from './certifiable-version';

/**
 * `keyhub key certificate <name> --import chain.pem`: a chain from an
 * outside CA (after `keyhub key csr`) becomes the version's chain, replacing
 * any earlier one. Rules:
 * - key pairs only, never a compromised or destroyed version;
 * - the leaf must certify exactly the version's public key, the one its row
 *   MAC binds (CERTIFICATE_KEY_MISMATCH), be within its validity, and each
 *   certificate must be issued and signed by the next, as far as the chain
 *   goes (CERTIFICATE_CHAIN_INVALID); at most LIMITS.maxChainCertificates,
 *   each small enough for a key package;
 * - stored with its audit event (old and new leaf serial) in one transaction.
 */
@injectable()
export class ImportKeyCertificate {
  constructor(private readonly ctx: HubContext) {}

  async execute(name: string, version: number | undefined, body: api.KeyCertificateImportBody, principal: Principal): Promise<api.KeyCertificateView> {
    const ders = pemCertificates(body.chainPem);
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const row = await loadCertifiable(m, name, version, true);
      const { leaf } = checkChain(ders, await verifiedPublicKey(this.ctx.keyring, row));
      const previous = await findVersionCertificate(m, row.version.id);
      const serial = normalizeSerial(leaf.serialNumber);
      const stored = await setVersionCertificate(m, { keyVersionId: row.version.id, source: 'imported', leafSerial: serial, chain: ders, createdBy: principal.name });
      await appendAudit(m, [
        {
          actor: principal.name,
          action: 'key.certificate_imported',
          subject: `key:${name}`,
          details: {
            keyId: row.key.id,
            version: row.version.version,
            serial,
            certificates: ders.length,
            notAfter: new Date(leaf.validTo).toISOString(),
            ...(previous ? { replaced: previous.leafSerial, replacedSource: previous.source } : {}),
          },
        },
      ]);
      return certificateView(row, stored, true);
    });
  }
}
