import { injectable } from 'tsyringe';
import { KEY_ALGORITHM_INFO, type api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { buildCsr } from '../../crypto/ca/csr-builder';
import { nameToText, type DistinguishedName } from '../../crypto/ca/names';
import { signWithKeyVersion } from '../../crypto/key-version-signer';
import { distributableAlgorithm } from '../../domain/key-spec';
import type { Principal } from '../../domain/principal';
import { loadCertifiable } from './certifiable-version';

/**
 * `keyhub key csr <name> --cn ...`: a PKCS#10 request for a key pair
 * version whose certificate must come from an outside CA. Rules:
 * - key pairs only, never a compromised or destroyed version;
 * - signed in the hub HSM by the version's private key, after its row MAC
 *   is checked there; the private key exists only as session objects for
 *   that one signature (crypto/key-version-signer.ts says how, and what the
 *   private key store's template cannot stop);
 * - audited: a signature by a managed key is a use of it.
 * The chain the outside CA returns comes back with `--import`.
 */
@injectable()
export class SignKeyCsr {
  constructor(private readonly ctx: HubContext) {}

  async execute(name: string, version: number | undefined, body: api.KeyCsrBody, principal: Principal): Promise<api.KeyCsrView> {
    const subject: DistinguishedName = {
      commonName: body.commonName,
      ...(body.organization !== undefined ? { organization: body.organization } : {}),
      ...(body.organizationalUnit !== undefined ? { organizationalUnit: body.organizationalUnit } : {}),
    };
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const row = await loadCertifiable(m, name, version, true);
      const csr = await buildCsr(
        subject,
        row.version.publicKey!,
        KEY_ALGORITHM_INFO[distributableAlgorithm(row.key.algorithm)].keyType === 'rsa' ? 'rsa' : 'ec',
        async (info) => (await signWithKeyVersion(this.ctx.keyring, row, info)).signature,
      );
      await appendAudit(m, [
        {
          actor: principal.name,
          action: 'key.csr_signed',
          subject: `key:${name}`,
          details: { keyId: row.key.id, version: row.version.version, subject: nameToText(subject), kcv: row.version.kcv },
        },
      ]);
      return { key: name, version: row.version.version, subject: nameToText(subject), signatureAlgorithm: csr.signatureAlgorithm, csrPem: csr.pem };
    });
  }
}
