import { createHash, randomBytes } from 'node:crypto';
import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { effectiveRoles } from '../../domain/roles';
import { deleteSession, insertSession, sessionForAuth, sweepSessions, touchSession } from '../../store/queries/dashboard';
import { AuthenticateToken } from '../operators/authenticate-token';

/** How long a browser session lives: idle (no request) and absolute (from login), both also bounded by the token's own expiry. */
export const SESSION_LIMITS = { idleSeconds: 15 * 60, absoluteSeconds: 8 * 3600 } as const;

/** A session id is 256 random bits, base64url: 43 characters. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

const hashId = (sessionId: string): Buffer => createHash('sha256').update(sessionId, 'utf8').digest();

/**
 * Dashboard browser sessions. Rule: a session is opened only with a token
 * the API itself accepts (same authentication, same throttling of failures
 * by the caller), is stored only as the hash of its id, expires when idle,
 * at an absolute limit and with its token, and ends at once when the token
 * or operator is revoked: the principal is re-derived from the token and
 * operator rows on every request, as bearer tokens are. Opening and closing
 * are audit events, written with the session row.
 */
@injectable()
export class DashboardSessions {
  constructor(
    private readonly ctx: HubContext,
    private readonly authenticateToken: AuthenticateToken,
  ) {}

  async open(token: string): Promise<{ sessionId: string; principal: Principal; expiresAt: Date }> {
    const principal = await this.authenticateToken.execute(token);
    if (!principal.tokenId) throw new KeyhubError('AUTH_INVALID', 'a dashboard session needs an API token');
    const sessionId = randomBytes(32).toString('base64url');
    const absolute = new Date(Date.now() + SESSION_LIMITS.absoluteSeconds * 1000);
    const expiresAt = principal.expiresAt && principal.expiresAt < absolute ? principal.expiresAt : absolute;
    await this.ctx.ds.transaction(async (m) => {
      await sweepSessions(m, SESSION_LIMITS.idleSeconds);
      await insertSession(m, { idHash: hashId(sessionId), operatorId: principal.operatorId, tokenId: principal.tokenId as string, expiresAt });
      await appendAudit(m, [{ actor: principal.name, action: 'dashboard.session.opened', subject: `token:${principal.tokenId}`, details: { expiresAt: expiresAt.toISOString() } }]);
    });
    return { sessionId, principal, expiresAt };
  }

  /** The principal of a live session; AUTH_MISSING for an unknown or expired one (the browser is sent to log in), AUTH_REVOKED when its token or operator was revoked. */
  async principal(sessionId: string): Promise<Principal> {
    if (!SESSION_ID.test(sessionId)) throw new KeyhubError('AUTH_MISSING', 'no dashboard session: log in');
    const idHash = hashId(sessionId);
    const m = this.ctx.ds.manager;
    const row = await sessionForAuth(m, idHash);
    if (!row) throw new KeyhubError('AUTH_MISSING', 'the dashboard session has ended: log in again');
    const now = Date.now();
    const idleEnd = row.last_seen_at.getTime() + SESSION_LIMITS.idleSeconds * 1000;
    if (row.token_revoked_at || row.operator_state !== 'active') {
      await deleteSession(m, idHash);
      throw new KeyhubError('AUTH_REVOKED', 'the token or operator of this session has been revoked');
    }
    if (row.expires_at.getTime() <= now || row.token_expires_at.getTime() <= now || idleEnd <= now) {
      await deleteSession(m, idHash);
      throw new KeyhubError('AUTH_MISSING', 'the dashboard session has expired: log in again');
    }
    await touchSession(m, idHash);
    const scope = row.token_roles as api.Role[] | null;
    return {
      operatorId: row.operator_id,
      name: row.operator_name,
      roles: effectiveRoles(row.operator_roles as api.Role[], scope),
      method: 'token',
      tokenId: row.token_id,
      tokenScope: scope,
      expiresAt: row.token_expires_at,
    };
  }

  /** Logout: the row goes, so the cookie is worth nothing even if the browser kept it. */
  async close(sessionId: string, principal: Principal): Promise<void> {
    if (!SESSION_ID.test(sessionId)) return;
    await this.ctx.ds.transaction(async (m) => {
      await deleteSession(m, hashId(sessionId));
      await appendAudit(m, [{ actor: principal.name, action: 'dashboard.session.closed', subject: `token:${principal.tokenId ?? 'none'}`, details: {} }]);
    });
  }
}
