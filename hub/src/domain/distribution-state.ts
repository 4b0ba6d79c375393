/**
 * The distribution state machine (one key version to one listener target).
 * queued: package in the outbox; sent: published, awaiting a receipt;
 * confirmed: the target reproduced the KCV; failed: gave up, with a reason;
 * superseded: a newer version replaced it (set by rotation, which does not
 * exist yet).
 */
export type DistributionState = 'queued' | 'sent' | 'confirmed' | 'failed' | 'superseded' | 'destroyed';

/** Listed so that a state nobody is in can still be named (metrics read it as 0). */
export const DISTRIBUTION_STATES: readonly DistributionState[] = ['queued', 'sent', 'confirmed', 'failed', 'superseded', 'destroyed'];

/**
 * Which states may follow which. The edges and who takes them:
 * - queued -> sent: the relay published the package.
 * - sent -> queued: the re-send job issued a fresh package (no receipt in time).
 * - sent -> failed: the re-send job gave up (TIMEOUT after the last attempt).
 * - queued | sent | failed -> confirmed: a receipt whose target KCV matches
 *   (a receipt may overtake the relay's commit, or arrive after a time-out).
 * - queued | sent | failed -> failed: a receipt reporting failure or a KCV mismatch.
 * - queued | sent | failed -> queued: a receipt whose failure a fresh package can cure.
 * - failed -> queued: an operator distributes the key again.
 * - destroyed -> queued: the key (still active) is distributed there again,
 *   e.g. the site matches a distribution policy again after it left it (the
 *   site refuses only packages issued before the destroy,
 *   listener/src/state/tombstones.ts). Only active versions are distributed.
 * - any -> destroyed: the site confirmed a destroy command (or a compromise
 *   it could only carry out by destroying the object): operations/commands/
 *   apply-command-receipt.ts. The version is no longer held there.
 * confirmed, superseded and destroyed are settled: no receipt changes them.
 */
export const DISTRIBUTION_TRANSITIONS: Readonly<Record<DistributionState, readonly DistributionState[]>> = {
  queued: ['sent', 'queued', 'confirmed', 'failed'],
  sent: ['queued', 'confirmed', 'failed'],
  failed: ['queued', 'confirmed', 'failed'],
  confirmed: [],
  superseded: [],
  destroyed: ['queued'],
};

export function canTransition(from: DistributionState, to: DistributionState): boolean {
  return DISTRIBUTION_TRANSITIONS[from].includes(to);
}

/** A settled distribution changes no more: a later receipt for it is a duplicate. */
export function isSettled(state: string): boolean {
  return state === 'confirmed' || state === 'superseded' || state === 'destroyed';
}

/**
 * What distributing a key version to a target does, given the distribution
 * that exists there (if any): create it; queue it afresh where it failed
 * or was destroyed at the site; change nothing where it is confirmed or in
 * flight.
 */
export function distributeAction(existing: DistributionState | undefined): 'create' | 'requeue' | 'skip' {
  if (existing === undefined) return 'create';
  return existing === 'failed' || existing === 'destroyed' ? 'requeue' : 'skip';
}
