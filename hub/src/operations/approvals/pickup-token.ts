import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { api } from '@keyhub/protocol';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { mintApiToken } from '../../crypto/api-tokens';
import { requestById } from '../../store/queries/approvals';
import { setTokenSecretOnce, tokenForAuth } from '../../store/queries/tokens';

/**
 * A token created by an approved request gets its secret here, once, and
 * only for the requester: the secret is made at pick-up and returned in this
 * one response, so it never rests in the database or in the request's result.
 */
@injectable()
export class PickupToken {
  constructor(private readonly ctx: HubContext) {}

  async execute(requestId: string, principal: Principal): Promise<api.IssuedToken> {
    return this.ctx.ds.transaction(async (m) => {
      const r = await requestById(m, requestId, true);
      if (!r) throw new KeyhubError('APPROVAL_NOT_FOUND', `no approval request ${requestId}`);
      const tokenId = r.result?.tokenId;
      if (r.requested_by !== principal.operatorId || r.state !== 'executed' || typeof tokenId !== 'string') {
        throw new KeyhubError('PICKUP_UNAVAILABLE', `request ${requestId} has no token for you to pick up`);
      }
      const minted = mintApiToken(tokenId);
      await setTokenSecretOnce(m, tokenId, minted.secretHash);
      // Judged by what the row now holds, not by the UPDATE's answer (TypeORM's postgres driver answers
      // UPDATE ... RETURNING with [rows, rowCount]): only our own hash means this pick-up set the secret.
      const row = await tokenForAuth(m, tokenId);
      if (!row?.secret_hash || !row.secret_hash.equals(minted.secretHash)) throw new KeyhubError('PICKUP_UNAVAILABLE', `the token of request ${requestId} was picked up already`);
      await appendAudit(m, [{ actor: principal.name, action: 'token.picked_up', subject: `token:${tokenId}`, details: { requestId, operator: row.operator_name } }]);
      return { id: tokenId, token: minted.token, operator: row.operator_name, roles: row.roles as api.Role[] | null, expiresAt: row.expires_at.toISOString() };
    });
  }
}
