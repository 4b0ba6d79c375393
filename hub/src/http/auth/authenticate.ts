import type { FastifyRequest } from 'fastify';
import { KeyhubError } from '@keyhub/shared';
import type { Principal } from '../../domain/principal';
import { allows } from '../../domain/roles';
import type { AuthenticateToken } from '../../operations/operators/authenticate-token';
import type { FailedAuthThrottle } from './failed-auth-throttle';
import { ROUTE_PERMISSIONS, routeKey } from './route-permissions';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** The bearer token of a request, if it sent one; a header that is there but not a bearer token is malformed. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  // RFC 9110: the scheme name is case-insensitive.
  const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
  if (!m) throw new KeyhubError('AUTH_INVALID', 'the Authorization header is not "Bearer <token>"');
  return m[1];
}

/**
 * Runs before the body is read: identifies the caller and checks the route's
 * permission from the one table. Unknown routes pass through to the 404
 * handler; a known route missing from the table is refused.
 */
export function authorizer(
  authenticateToken: AuthenticateToken,
  throttle: FailedAuthThrottle,
  certificatePrincipal?: (req: FastifyRequest) => Promise<Principal | undefined>,
  // Dashboard session cookies: consulted only on /ui routes (dashboard/session.ts), never on /v1.
  sessionPrincipal?: (req: FastifyRequest) => Promise<Principal | undefined>,
) {
  const identify = async (req: FastifyRequest): Promise<Principal | undefined> => {
    const token = bearerToken(req);
    if (token !== undefined) return authenticateToken.execute(token);
    const session = sessionPrincipal ? await sessionPrincipal(req) : undefined;
    if (session) return session;
    return certificatePrincipal ? certificatePrincipal(req) : undefined;
  };
  return async (req: FastifyRequest): Promise<void> => {
    const url = req.routeOptions.url;
    if (url === undefined) return;
    const access = ROUTE_PERMISSIONS[routeKey(req.method, url)];
    if (access === 'public') return;
    let principal: Principal | undefined;
    try {
      principal = await identify(req);
    } catch (err) {
      if (KeyhubError.is(err) && ['AUTH_INVALID', 'AUTH_EXPIRED', 'AUTH_REVOKED', 'CERTIFICATE_INVALID', 'CERTIFICATE_REVOKED'].includes(err.code)) {
        // A valid credential from the same address (a NAT, a bastion) is still served; only failures are cut short.
        if (throttle.blocked(req.ip)) throw new KeyhubError('RATE_LIMITED', 'too many failed authentications from this address; retry later');
        throttle.recordFailure(req.ip);
      }
      throw err;
    }
    if (!principal) throw new KeyhubError('AUTH_MISSING', 'authenticate with a bearer token (KEYHUB_TOKEN or `keyhub login`) or a client certificate');
    req.principal = principal;
    if (access === undefined || !allows(principal.roles, access)) {
      throw new KeyhubError('PERMISSION_DENIED', `${principal.name} (${principal.roles.join(', ') || 'no roles'}) may not ${req.method} ${url}`, {
        details: { needs: access ?? 'undeclared route' },
      });
    }
  };
}

/** For handlers: the principal the authorizer established (every non-public route has one). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new KeyhubError('AUTH_MISSING', 'not authenticated');
  return req.principal;
}
