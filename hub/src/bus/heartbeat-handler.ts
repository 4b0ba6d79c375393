import type { Msg } from 'nats';
import { decodeEnvelope, isEnvelopeOf, MESSAGE_TYPES } from '@keyhub/protocol';
import { KeyhubError, type Logger } from '@keyhub/shared';
import type { VerifyListenerSignature } from '../operations/listeners/verify-listener-signature';

/**
 * Heartbeats (core NATS, not JetStream): each one is parsed and its
 * signature checked; the listeners heard from are gathered here and written
 * in one statement by the heartbeat-flush job. Anything malformed, or sent
 * under another listener's subject, is dropped without a word.
 */
export class HeartbeatHandler {
  private seen = new Set<string>();

  constructor(
    private readonly verifySignature: VerifyListenerSignature,
    private readonly logger: Logger,
  ) {}

  handle(msg: Msg): void {
    const listenerId = msg.subject.split('.').pop() ?? '';
    const decoded = decodeEnvelope(msg.data);
    if (!decoded.ok || !isEnvelopeOf(decoded.envelope, MESSAGE_TYPES.heartbeat)) return;
    const envelope = decoded.envelope;
    if (envelope.payload.listenerId !== listenerId) return;
    this.verifySignature.execute(envelope, listenerId).then(
      () => this.seen.add(listenerId),
      (e: unknown) => this.logger.warn({ code: KeyhubError.from(e).code, listenerId }, 'heartbeat rejected'),
    );
  }

  /** The listeners heard from since the last call. */
  takeSeen(): string[] {
    if (this.seen.size === 0) return [];
    const ids = [...this.seen];
    this.seen.clear();
    return ids;
  }
}
