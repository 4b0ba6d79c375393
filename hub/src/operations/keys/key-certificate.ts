import { inject, injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { DistinguishedName, HubCa } from '../../crypto/ca';
import { assertCertifies } from '../../crypto/ca/chain-check';
import type { Principal } from '../../domain/principal';
import { findVersionCertificate, setVersionCertificate } from '../../store/queries/key-certificates';
import { TOKENS } from '../../tokens';
import { certificateView, loadCertifiable, verifiedPublicKey } from './certifiable-version';

/**
 * `keyhub key certificate <name>`: a certificate for a key pair version from
 * the hub's key-issuing CA (digitalSignature, never a CA), so that a
 * keystore can hold the private key with its chain (issue 12). Rules:
 * - key pairs only (KEY_NOT_A_PAIR), never a compromised or destroyed
 *   version (KEY_VERSION_NOT_CERTIFIABLE);
 * - the public key certified is the one the version's row MAC binds,
 *   checked in the HSM first (ROW_MAC_INVALID): a public key swapped in the
 *   database never gets the CA's signature;
 * - idempotent: a version that has a chain (issued or imported) gets it
 *   back unchanged (`created: false`); the version row is locked, so two
 *   concurrent calls issue one certificate;
 * - the certificate's row, the version's chain (leaf, key-issuing CA, root)
 *   and the audit event commit together.
 */
@injectable()
export class IssueKeyCertificate {
  constructor(
    private readonly ctx: HubContext,
    @inject(TOKENS.ca) private readonly ca: HubCa,
  ) {}

  async execute(name: string, version: number | undefined, body: api.KeyCertificateBody, principal: Principal): Promise<api.KeyCertificateView> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const row = await loadCertifiable(m, name, version, true);
      const spki = await verifiedPublicKey(this.ctx.keyring, row);
      const existing = await findVersionCertificate(m, row.version.id);
      if (existing) {
        // Whatever was stored must still certify this version's key; a chain moved in the database is refused, not handed out.
        assertCertifies(existing.chain[0], spki);
        return certificateView(row, existing, false);
      }
      const subject = subjectOf(name, body);
      const issued = await this.ca.issueKeyCertificate(spki, subject, { actor: principal.name, tx: m, ...(body.validityDays !== undefined ? { validityDays: body.validityDays } : {}) });
      const chain = [issued.der, this.ca.issuers['key-issuing'].der, this.ca.issuers.root.der];
      const stored = await setVersionCertificate(m, { keyVersionId: row.version.id, source: 'hub-ca', leafSerial: issued.serial, chain, createdBy: principal.name });
      await appendAudit(m, [
        {
          actor: principal.name,
          action: 'key.certificate_issued',
          subject: `key:${name}`,
          details: { keyId: row.key.id, version: row.version.version, serial: issued.serial, notAfter: issued.notAfter.toISOString(), kcv: row.version.kcv },
        },
      ]);
      return certificateView(row, stored, true);
    });
  }
}

/** CN defaults to the key's name; a name longer than X.509 allows (64) must be given one. */
function subjectOf(name: string, body: api.KeyCertificateBody): DistinguishedName {
  const commonName = body.commonName ?? name;
  if ([...commonName].length > 64) throw new KeyhubError('INPUT_INVALID', `key name "${name}" is longer than a certificate's CN may be (64): give a common name`);
  return {
    commonName,
    ...(body.organization !== undefined ? { organization: body.organization } : {}),
    ...(body.organizationalUnit !== undefined ? { organizationalUnit: body.organizationalUnit } : {}),
  };
}
