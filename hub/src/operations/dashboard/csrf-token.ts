import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The CSRF token of a session: an HMAC keyed by the session id, which only
 * the browser's HttpOnly cookie and nobody else holds. A page on another
 * origin can neither read the cookie nor the token in our pages, so it
 * cannot produce the token; no second secret has to be stored. Pure, so
 * the rule is unit-testable.
 */
export function csrfTokenFor(sessionId: string): string {
  return createHmac('sha256', sessionId).update('keyhub-dashboard-csrf-v1').digest('base64url');
}

/** Constant-time comparison of a submitted CSRF token with the expected one. */
export function csrfMatches(expected: string, submitted: unknown): boolean {
  if (typeof submitted !== 'string' || submitted.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(submitted));
}
