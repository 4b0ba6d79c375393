import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { KeyhubError } from '@keyhub/shared';
import { csrfTokenFor } from '../../operations/dashboard/csrf-token';
import { DashboardSessions } from '../../operations/dashboard/dashboard-sessions';
import type { DashboardDeps } from '../index';
import { assertCsrf, assertFormAllowed, assertSameOrigin, clearCookie, LOGIN_COOKIE, readCookie, SESSION_COOKIE, setCookie } from '../session';
import { page, q } from './render';

const HIDE = { schema: { hide: true } };
/** Failures that mean "this token does not open a session": the form says so, without saying which. */
const LOGIN_REFUSALS = new Set(['AUTH_INVALID', 'AUTH_EXPIRED', 'AUTH_REVOKED']);
const LOGIN_NONCE_SECONDS = 600;

function field(body: unknown, name: string, max: number): string | undefined {
  const v = body && typeof body === 'object' ? (body as Record<string, unknown>)[name] : undefined;
  return typeof v === 'string' && v.length <= max ? v.trim() : undefined;
}

/**
 * Login with an operator's API token (pasted once; the browser keeps only
 * the session cookie), and logout. The login form is protected like every
 * other form: same origin, and a CSRF token bound to a nonce cookie, since
 * no session exists yet to bind it to.
 */
export function registerLoginPages(app: FastifyInstance, { resolve, loginThrottle }: DashboardDeps): void {
  app.get('/ui/login', HIDE, async (req, reply) => {
    const nonce = randomBytes(32).toString('base64url');
    setCookie(reply, LOGIN_COOKIE, nonce, LOGIN_NONCE_SECONDS);
    const ended = q(req.query, 'ended', 64);
    return page(req, reply, 'login.eta', 'Log in', { loginCsrf: csrfTokenFor(nonce), failed: q(req.query, 'failed', 8) !== undefined, ended: ended ?? null });
  });

  app.post('/ui/login', HIDE, async (req, reply) => {
    assertSameOrigin(req);
    assertCsrf(readCookie(req, LOGIN_COOKIE), req.body);
    const token = field(req.body, 'token', 512);
    if (!token) return reply.redirect('/ui/login?failed=1', 303);
    if (loginThrottle.blocked(req.ip)) throw new KeyhubError('RATE_LIMITED', 'too many failed logins from this address; retry later');
    try {
      const { sessionId, expiresAt } = await resolve(DashboardSessions).open(token);
      clearCookie(reply, LOGIN_COOKIE);
      setCookie(reply, SESSION_COOKIE, sessionId, (expiresAt.getTime() - Date.now()) / 1000);
      return reply.redirect('/ui', 303);
    } catch (err) {
      if (!KeyhubError.is(err) || !LOGIN_REFUSALS.has(err.code)) throw err;
      loginThrottle.recordFailure(req.ip);
      return reply.redirect('/ui/login?failed=1', 303);
    }
  });

  app.post('/ui/logout', HIDE, async (req, reply) => {
    assertFormAllowed(req);
    if (req.uiSessionId && req.principal) await resolve(DashboardSessions).close(req.uiSessionId, req.principal);
    clearCookie(reply, SESSION_COOKIE);
    return reply.redirect('/ui/login', 303);
  });
}
