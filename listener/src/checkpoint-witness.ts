import { checkpointDigest, verifyEnvelope, type AuditCheckpointMessage, type SignedEnvelope } from '@keyhub/protocol';
import type { Logger } from '@keyhub/shared';
import type { InboxResult } from './inbox';
import type { HubKeyStore } from './state/hub-key';
import { witnessLineToCheckpoint, type CheckpointStore } from './state/checkpoints';

/**
 * A signed audit checkpoint from the hub: verified under the pinned hub key
 * and kept as this site's witness of the hub's history. Rules: nothing that
 * fails verification is stored, and nothing is answered (a checkpoint gets
 * no receipt); a second, different checkpoint for an event the site already
 * holds is kept too and logged as an error, since it proves the hub signed
 * two histories.
 */
export class CheckpointWitness {
  constructor(
    private readonly store: CheckpointStore,
    private readonly hubKeys: HubKeyStore,
    private readonly logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  handle(envelope: SignedEnvelope<AuditCheckpointMessage>): InboxResult {
    const hubKey = this.hubKeys.load();
    if (!hubKey) return this.drop('NOT_ENROLLED', 'no pinned hub key yet');
    if (envelope.signature.alg !== 'ES256' || !verifyEnvelope(envelope, hubKey)) return this.drop('SIGNATURE_INVALID', 'checkpoint is not signed by the pinned hub key');
    const line = { type: 'checkpoint' as const, payload: envelope.payload, signature: envelope.signature.value, receivedAt: this.now().toISOString() };
    const seq = envelope.payload.seq;
    const held = this.store.atSeq(seq);
    if (held && checkpointDigest(witnessLineToCheckpoint(held)) !== checkpointDigest(witnessLineToCheckpoint(line))) {
      this.logger.error({ seq }, 'the hub signed two different checkpoints for one event: keeping both as evidence');
    }
    const result = this.store.add(line);
    this.logger.debug({ seq, result }, 'audit checkpoint witnessed');
    return { kind: 'checkpoint', result, seq };
  }

  private drop(code: 'NOT_ENROLLED' | 'SIGNATURE_INVALID', detail: string): InboxResult {
    this.logger.warn({ code, detail }, 'audit checkpoint dropped');
    return { kind: 'dropped', code };
  }
}
