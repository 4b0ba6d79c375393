import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import type { VerifiedClient } from '../../crypto/ca';
import type { Principal } from '../../domain/principal';
import { operatorById } from '../../store/queries/operators';

/**
 * An operator's client certificate (already checked against the hub CA and
 * its records) becomes a principal with the operator's roles as they are
 * now: revoking the operator ends certificate access at once too.
 */
@injectable()
export class AuthenticateCertificate {
  constructor(private readonly ctx: HubContext) {}

  async execute(client: VerifiedClient): Promise<Principal> {
    const op = await operatorById(this.ctx.ds.manager, client.operatorId);
    if (!op) throw new KeyhubError('CERTIFICATE_INVALID', 'the certificate names no operator of this hub');
    if (op.state !== 'active') throw new KeyhubError('AUTH_REVOKED', 'the operator has been revoked');
    return { operatorId: op.id, name: op.name, roles: op.roles as api.Role[], method: 'certificate', tokenId: null, tokenScope: null, expiresAt: client.notAfter };
  }
}
