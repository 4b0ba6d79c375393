import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { allows } from '../../domain/roles';
import { revokeToken, tokenOwner } from '../../store/queries/tokens';

/** Revokes a token at once: its owner may always, an admin may any. */
@injectable()
export class RevokeToken {
  constructor(private readonly ctx: HubContext) {}

  async execute(tokenId: string, principal: Principal): Promise<{ revoked: boolean }> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const owner = await tokenOwner(m, tokenId);
      if (!owner) throw new KeyhubError('TOKEN_NOT_FOUND', `no token ${tokenId}`);
      if (owner.operator_id !== principal.operatorId && !allows(principal.roles, 'operators:write')) throw new KeyhubError('TOKEN_NOT_FOUND', `no token ${tokenId}`);
      // Decided from the row read under the audit-chain lock (every revocation path takes it), not from the
      // UPDATE's answer: TypeORM's postgres driver answers UPDATE ... RETURNING with [rows, rowCount].
      const revoked = owner.revoked_at === null;
      if (revoked) await revokeToken(m, tokenId, principal.name);
      if (revoked) await appendAudit(m, [{ actor: principal.name, action: 'token.revoked', subject: `token:${tokenId}`, details: {} }]);
      return { revoked };
    });
  }
}
