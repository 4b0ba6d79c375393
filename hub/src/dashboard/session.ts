import type { FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import { KeyhubError } from '@keyhub/shared';
import type { Principal } from '../domain/principal';
import { csrfMatches, csrfTokenFor } from '../operations/dashboard/csrf-token';
import { DashboardSessions } from '../operations/dashboard/dashboard-sessions';
import type { Resolve } from '../http/routes';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when the request was authenticated by a dashboard session cookie (not a bearer token): such requests need CSRF checks on writes. */
    uiSessionId?: string;
  }
}

/** `__Secure-`: browsers accept these cookies only over HTTPS with the Secure flag. */
export const SESSION_COOKIE = '__Secure-khub_session';
/** A login nonce (double-submit): binds the login form's CSRF token to this browser before any session exists. */
export const LOGIN_COOKIE = '__Secure-khub_login';
export const UI_PREFIX = '/ui';

const COOKIE_BASE = { path: UI_PREFIX, secure: true, httpOnly: true, sameSite: 'strict' as const };

export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  return fastifyCookie.parse(header)[name];
}

export function setCookie(reply: FastifyReply, name: string, value: string, maxAgeSeconds: number): void {
  void reply.header('set-cookie', fastifyCookie.serialize(name, value, { ...COOKIE_BASE, maxAge: Math.max(0, Math.floor(maxAgeSeconds)) }));
}

export function clearCookie(reply: FastifyReply, name: string): void {
  void reply.header('set-cookie', fastifyCookie.serialize(name, '', { ...COOKIE_BASE, maxAge: 0, expires: new Date(0) }));
}

/**
 * For the API's authorizer: the principal of a dashboard session cookie,
 * only on dashboard routes (a cookie never authenticates /v1/: the API
 * takes explicit credentials only, so it needs no CSRF defence).
 */
export function sessionPrincipal(resolve: Resolve) {
  return async (req: FastifyRequest): Promise<Principal | undefined> => {
    const url = req.routeOptions.url ?? '';
    if (url !== UI_PREFIX && !url.startsWith(`${UI_PREFIX}/`)) return undefined;
    const sessionId = readCookie(req, SESSION_COOKIE);
    if (sessionId === undefined) return undefined;
    const principal = await resolve(DashboardSessions).principal(sessionId);
    req.uiSessionId = sessionId;
    return principal;
  };
}

/** The CSRF token a page embeds in its forms (none for bearer-token callers, who are not exposed to CSRF). */
export function csrfOf(req: FastifyRequest): string | null {
  return req.uiSessionId ? csrfTokenFor(req.uiSessionId) : null;
}

/**
 * Refuses a cross-site write: the Origin header must be the hub's own
 * (browsers send it on every POST), and Sec-Fetch-Site, where sent, must
 * say same-origin. Checked before the CSRF token, so a foreign page is
 * named as such.
 */
export function assertSameOrigin(req: FastifyRequest): void {
  const origin = req.headers.origin;
  const expected = `https://${req.headers.host ?? ''}`;
  if (typeof origin !== 'string' || origin !== expected) throw new KeyhubError('ORIGIN_REFUSED', 'this form may only be posted from the hub dashboard itself');
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') throw new KeyhubError('ORIGIN_REFUSED', 'this form may only be posted from the hub dashboard itself');
}

/** The form's `csrf` field must be the token of the session (or of the login nonce) the request came with. */
export function assertCsrf(secret: string | undefined, body: unknown): void {
  const submitted = body && typeof body === 'object' ? (body as Record<string, unknown>).csrf : undefined;
  if (!secret || !csrfMatches(csrfTokenFor(secret), submitted)) throw new KeyhubError('CSRF_TOKEN_INVALID', 'the form lacks the CSRF token of this session; reload the page and try again');
}

/** Every write from a session-authenticated browser: same origin and a valid CSRF token. Bearer-token callers carry their credential explicitly and skip it. */
export function assertFormAllowed(req: FastifyRequest): void {
  if (!req.uiSessionId) return;
  assertSameOrigin(req);
  assertCsrf(req.uiSessionId, req.body);
}
