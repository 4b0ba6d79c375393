/**
 * Re-send back-off: a package sent but not confirmed is issued again after
 * `resendAfterSeconds`, doubled per attempt made, at most RESEND_MAX_DOUBLINGS
 * times. The due-resend query (store/queries/distributions.ts) computes the
 * same in SQL, `$1 * power(2, LEAST(d.attempts - 1, 6))`, so that it can
 * select due rows through an index; the two must agree.
 */
export const RESEND_MAX_DOUBLINGS = 6;

/** How long after its last send a distribution on its `attempts`-th attempt is due again. */
export function resendDelaySeconds(resendAfterSeconds: number, attempts: number): number {
  return resendAfterSeconds * 2 ** Math.min(attempts - 1, RESEND_MAX_DOUBLINGS);
}

export function isResendDue(lastSentAt: Date, attempts: number, resendAfterSeconds: number, now: Date): boolean {
  return lastSentAt.getTime() < now.getTime() - resendDelaySeconds(resendAfterSeconds, attempts) * 1000;
}

/** Another package may be issued while fewer than `maxAttempts` were. */
export function hasAttemptsLeft(attempts: number, maxAttempts: number): boolean {
  return attempts < maxAttempts;
}

/** What the re-send job does with a due distribution: issue it again, or fail it with TIMEOUT. */
export function resendOutcome(attempts: number, maxAttempts: number): 'reissue' | 'fail' {
  return hasAttemptsLeft(attempts, maxAttempts) ? 'reissue' : 'fail';
}

/** How often the re-send job looks for due rows: half the base delay, between 1 and 5 seconds. */
export function resendPollMs(resendAfterSeconds: number): number {
  return Math.max(1000, Math.min(5000, resendAfterSeconds * 500));
}
