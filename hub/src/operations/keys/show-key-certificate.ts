import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../../context';
import { assertCertifies } from '../../crypto/ca/chain-check';
import { findVersionCertificate } from '../../store/queries/key-certificates';
import { certificateView, loadCertifiable, verifiedPublicKey } from './certifiable-version';

/**
 * A key pair version's certificate chain (public material), leaf first.
 * Rule: only a chain whose leaf certifies the public key the version's row
 * MAC binds is handed out (CERTIFICATE_KEY_MISMATCH otherwise).
 */
@injectable()
export class ShowKeyCertificate {
  constructor(private readonly ctx: HubContext) {}

  async execute(name: string, version: number | undefined): Promise<api.KeyCertificateView> {
    const row = await loadCertifiable(this.ctx.ds, name, version, false);
    const stored = await findVersionCertificate(this.ctx.ds, row.version.id);
    if (!stored) throw new KeyhubError('KEY_CERTIFICATE_NOT_FOUND', `version ${row.version.version} of ${name} has no certificate chain: issue one or import one`);
    assertCertifies(stored.chain[0], await verifiedPublicKey(this.ctx.keyring, row));
    return certificateView(row, stored, false);
  }
}
