import type { Msg } from 'nats';
import { decodeEnvelope, isEnvelopeOf, MESSAGE_TYPES } from '@keyhub/protocol';
import { KeyhubError, RateLimitedLog, type Logger } from '@keyhub/shared';
import { advancesSequence, freshness, type HeartbeatSeen, type TargetHealth } from '../domain/liveness';
import type { VerifyListenerSignature } from '../operations/listeners/verify-listener-signature';

/**
 * Heartbeats (core NATS, not JetStream): each one is parsed, checked for
 * freshness (time window and a sequence above the last one this replica
 * accepted; domain/liveness.ts) before any signature work, then its
 * signature is checked; the listeners heard from are gathered here, with the
 * highest sequence each, and written in one statement by the heartbeat-flush
 * job, which checks the sequence again against the database (another replica
 * may have accepted a later one). Anything malformed, or sent under another
 * listener's subject, is dropped without a word; a stale or replayed one is
 * refused with HEARTBEAT_STALE in a rate-limited log line.
 */
export class HeartbeatHandler {
  private seen = new Map<string, { sequence: number; targets: TargetHealth[] }>();
  /** Highest sequence this replica accepted per listener: only ever set after a signature verified. */
  private readonly accepted = new Map<string, number>();
  private readonly refusals: RateLimitedLog;
  private refusedCount = 0;

  constructor(
    private readonly verifySignature: VerifyListenerSignature,
    logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.refusals = new RateLimitedLog(logger);
  }

  /** Heartbeats refused as stale or replayed since start. */
  get refused(): number {
    return this.refusedCount;
  }

  handle(msg: Msg): void {
    void this.check(msg);
  }

  /** `handle`, awaitable (for tests): resolves once the heartbeat is taken or refused; never rejects. */
  check(msg: Pick<Msg, 'subject' | 'data'>): Promise<void> {
    const listenerId = msg.subject.split('.').pop() ?? '';
    const decoded = decodeEnvelope(msg.data);
    if (!decoded.ok || !isEnvelopeOf(decoded.envelope, MESSAGE_TYPES.heartbeat)) return Promise.resolve();
    const envelope = decoded.envelope;
    const hb = envelope.payload;
    if (hb.listenerId !== listenerId) return Promise.resolve();
    const fresh = freshness(hb.issuedAt, this.now());
    if (fresh !== 'fresh') return Promise.resolve(this.refuse(listenerId, fresh, hb.sequence));
    if (!advancesSequence(hb.sequence, this.accepted.get(listenerId))) return Promise.resolve(this.refuse(listenerId, 'replayed', hb.sequence));
    return this.verifySignature.execute(envelope, listenerId).then(
      () => {
        // Checked again: two heartbeats may have verified concurrently.
        if (!advancesSequence(hb.sequence, this.accepted.get(listenerId))) return this.refuse(listenerId, 'replayed', hb.sequence);
        this.accepted.set(listenerId, hb.sequence);
        this.seen.set(listenerId, { sequence: hb.sequence, targets: hb.targets });
      },
      (e: unknown) => this.refusals.warn(KeyhubError.from(e).code, { code: KeyhubError.from(e).code, listenerId }, 'heartbeat rejected'),
    );
  }

  /** The listeners heard from since the last call, with the highest sequence of each and the target health it reported. */
  takeSeen(): HeartbeatSeen[] {
    if (this.seen.size === 0) return [];
    const out = [...this.seen].map(([listenerId, { sequence, targets }]) => ({ listenerId, sequence, targets }));
    this.seen.clear();
    return out;
  }

  private refuse(listenerId: string, why: 'stale' | 'future' | 'replayed', sequence: number): void {
    this.refusedCount++;
    this.refusals.warn(`HEARTBEAT_STALE:${why}`, { code: 'HEARTBEAT_STALE', why, listenerId, sequence }, 'heartbeat refused');
  }
}
