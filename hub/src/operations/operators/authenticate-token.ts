import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { tokenSecretMatches } from '../../crypto/api-tokens';
import { effectiveRoles } from '../../domain/roles';
import type { Principal } from '../../domain/principal';
import { tokenForAuth, touchToken } from '../../store/queries/tokens';

/**
 * Turns a bearer token into a principal, reading the token and its operator
 * afresh on every request: a revocation takes effect on the next request,
 * on every replica, with no cache to wait for. Whether a token was revoked
 * or expired is said only to someone who proved they hold its secret.
 */
@injectable()
export class AuthenticateToken {
  constructor(private readonly ctx: HubContext) {}

  async execute(token: string): Promise<Principal> {
    const parsed = api.parseApiToken(token);
    if (!parsed) throw new KeyhubError('AUTH_INVALID', 'the token is malformed');
    const row = await tokenForAuth(this.ctx.ds.manager, parsed.id);
    const matches = tokenSecretMatches(parsed.secret, row?.secret_hash ?? null);
    if (!row || !matches) throw new KeyhubError('AUTH_INVALID', 'the token is not known to this hub');
    if (row.revoked_at || row.operator_state !== 'active') throw new KeyhubError('AUTH_REVOKED', 'the token or its operator has been revoked');
    if (row.expires_at.getTime() <= Date.now()) throw new KeyhubError('AUTH_EXPIRED', `the token expired at ${row.expires_at.toISOString()}`);
    await touchToken(this.ctx.ds.manager, row.id);
    const scope = row.roles as api.Role[] | null;
    return {
      operatorId: row.operator_id,
      name: row.operator_name,
      roles: effectiveRoles(row.operator_roles as api.Role[], scope),
      method: 'token',
      tokenId: row.id,
      tokenScope: scope,
      expiresAt: row.expires_at,
    };
  }
}
