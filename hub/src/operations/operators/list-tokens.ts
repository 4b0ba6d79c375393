import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { allows } from '../../domain/roles';
import { listTokens } from '../../store/queries/tokens';

/** Tokens (never their secrets): one's own, or everyone's for those who may read operators. */
@injectable()
export class ListTokens {
  constructor(private readonly ctx: HubContext) {}

  async execute(principal: Principal, all: boolean): Promise<api.TokenList> {
    const rows = await listTokens(this.ctx.ds.manager, all && allows(principal.roles, 'operators:read') ? null : principal.operatorId);
    return {
      tokens: rows.map((t) => ({
        id: t.id,
        operator: t.operator,
        roles: t.roles as api.Role[] | null,
        description: t.description,
        createdAt: t.created_at.toISOString(),
        expiresAt: t.expires_at.toISOString(),
        lastUsedAt: t.last_used_at ? t.last_used_at.toISOString() : null,
        revokedAt: t.revoked_at ? t.revoked_at.toISOString() : null,
      })),
    };
  }
}
