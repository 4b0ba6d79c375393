/**
 * When a message proves that a listener is alive. A signature alone does not:
 * a captured heartbeat (or receipt) verifies just as well a year later. So a
 * message counts only while it is fresh (issued within FRESH_PAST_MS before
 * the hub's clock, at most FRESH_FUTURE_MS after it, allowing for clock
 * skew), and a heartbeat only with a sequence greater than the last one the
 * hub accepted from that listener (checked again in SQL, across replicas).
 * A replay therefore moves nothing: outside the window it is stale, inside it
 * the original already took its sequence.
 */
export const FRESH_PAST_MS = 60_000;
export const FRESH_FUTURE_MS = 30_000;

export type Freshness = 'fresh' | 'stale' | 'future';

export function freshness(issuedAt: string, now: Date): Freshness {
  const at = Date.parse(issuedAt);
  if (!Number.isFinite(at)) return 'stale';
  const delta = now.getTime() - at;
  if (delta > FRESH_PAST_MS) return 'stale';
  if (delta < -FRESH_FUTURE_MS) return 'future';
  return 'fresh';
}

/** A verified heartbeat, as the flush writes it. */
export interface HeartbeatSeen {
  listenerId: string;
  sequence: number;
  /** Per-target health the heartbeat reported (issue 12); stored with the last-seen time, in the same statement. */
  targets?: TargetHealth[];
}

/** One target's health as a signed heartbeat reported it. */
export interface TargetHealth {
  name: string;
  healthy: boolean;
  detail?: string;
}

/**
 * Whether a heartbeat with `sequence` advances a listener whose last accepted
 * sequence is `last` (undefined: none yet).
 */
export function advancesSequence(sequence: number, last: number | undefined): boolean {
  return last === undefined || sequence > last;
}
