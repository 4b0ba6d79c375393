import { randomUUID } from 'node:crypto';
import {
  decodeEnvelope,
  encodeEnvelope,
  isEnvelopeOf,
  MESSAGE_TYPES,
  verifyEnvelope,
  VerifiedBatches,
  type ErrorCode,
  type KeyPackage,
  type Receipt,
  type RootKekMessage,
  type SignedEnvelope,
} from '@keyhub/protocol';
import { aesKcv, KeyhubError, type Logger } from '@keyhub/shared';
import type { ListenerBus } from './bus/listener-bus';
import type { ListenerKeys } from './listener-keys';
import type { HubKeyStore } from './state/hub-key';
import type { Journal } from './state/journal';
import type { Target } from './targets/target';

/** The part of a JetStream message the inbox needs; lets tests feed it directly. */
export interface InboundMessage {
  data: Uint8Array;
  /** Stream sequence: the same on a redelivery, different for a re-published copy. */
  streamSeq: number;
}

export type InboxResult =
  | { kind: 'root_kek'; result: 'stored' | 'present' }
  | { kind: 'receipt'; outcome: Receipt['outcome']; code?: ErrorCode; packageId: string }
  | { kind: 'redelivered'; packageId: string }
  | { kind: 'dropped'; code: ErrorCode };

/**
 * Everything the hub sends this listener. For a key package the checks run in
 * this order, and the first failure decides the receipt: schema and size,
 * hub signature, addressee, replay (sequence), expiry, target, then the
 * import, whose KCV is computed at the target. Every verified package gets a
 * signed receipt; the message is acked only after the receipt is journaled
 * and published, so a crash repeats work but never loses it.
 */
export class Inbox {
  /** Batch signatures already checked: packages of one batch cost one ECDSA verification, not one each. */
  private readonly batches = new VerifiedBatches();

  constructor(
    private readonly listenerId: string,
    private readonly keys: ListenerKeys,
    private readonly hubKeys: HubKeyStore,
    private readonly journal: Journal,
    private readonly targets: Map<string, Target>,
    private readonly bus: Pick<ListenerBus, 'publishUp'>,
    private readonly logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async handle(msg: InboundMessage): Promise<InboxResult> {
    const decoded = decodeEnvelope(msg.data);
    if (!decoded.ok) {
      this.logger.warn({ code: decoded.code, detail: decoded.detail, streamSeq: msg.streamSeq }, 'message dropped');
      return { kind: 'dropped', code: decoded.code };
    }
    const envelope = decoded.envelope;
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.rootKek)) return this.handleRootKek(envelope);
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.keyPackage)) return this.handlePackage(envelope, msg.streamSeq);
    this.logger.warn({ type: envelope.payload.type }, 'unexpected message type dropped');
    return { kind: 'dropped', code: 'MESSAGE_UNKNOWN_TYPE' };
  }

  private async handleRootKek(envelope: SignedEnvelope<RootKekMessage>): Promise<InboxResult> {
    const msg = envelope.payload;
    const hubKey = Buffer.from(msg.hubKey, 'base64');
    try {
      this.hubKeys.assertPinned(hubKey);
      if (!verifyEnvelope(envelope, hubKey)) throw new KeyhubError('SIGNATURE_INVALID', 'root KEK message is not signed by the hub key it carries');
      if (msg.listenerId !== this.listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', `root KEK is for listener ${msg.listenerId}`);
    } catch (err) {
      const e = KeyhubError.from(err);
      this.logger.warn({ code: e.code, detail: e.message }, 'root KEK message rejected');
      return { kind: 'dropped', code: e.code };
    }
    this.hubKeys.save(hubKey);
    const result = await this.keys.unwrapRootKek(
      Buffer.from(msg.kek.blob, 'base64'),
      msg.kek.oaepHash,
      msg.kek.id,
      msg.kek.version,
      (h) => aesKcv(this.keys.hsm, h),
      msg.kek.kcv,
    );
    const confirm = await this.keys.sign({
      type: MESSAGE_TYPES.rootKekConfirm,
      id: randomUUID(),
      listenerId: this.listenerId,
      issuedAt: this.now().toISOString(),
      kekId: msg.kek.id,
      kekVersion: msg.kek.version,
      kcv: msg.kek.kcv,
    });
    await this.bus.publishUp('kek_confirm', confirm);
    this.logger.info({ kekId: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv, result }, 'root KEK installed and confirmed');
    return { kind: 'root_kek', result };
  }

  private async handlePackage(envelope: SignedEnvelope<KeyPackage>, streamSeq: number): Promise<InboxResult> {
    const pkg = envelope.payload;
    const known = this.journal.get(pkg.id);
    if (known && known.streamSeq === streamSeq) {
      // Redelivery of a message we processed but could not ack: same receipt, no second import.
      await this.bus.publishUp('receipt', JSON.parse(Buffer.from(known.receipt, 'base64').toString('utf8')));
      return { kind: 'redelivered', packageId: pkg.id };
    }
    const hubKey = this.hubKeys.load();
    let reserved = false;
    let result: { outcome: Receipt['outcome']; kcv?: string; code?: ErrorCode; detail?: string };
    try {
      if (!hubKey) throw new KeyhubError('NOT_ENROLLED', 'no pinned hub key yet: enrollment is not complete');
      if (!verifyEnvelope(envelope, hubKey, this.batches)) throw new KeyhubError('SIGNATURE_INVALID', 'package signature does not verify under the pinned hub key');
      if (pkg.listenerId !== this.listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', `package is addressed to listener ${pkg.listenerId}`);
      if (known || !this.journal.reserve(pkg.sequence, pkg.id)) {
        throw new KeyhubError('PACKAGE_REPLAYED', `sequence ${pkg.sequence} was already used or is older than the replay window (highest ${this.journal.lastSequence})`);
      }
      reserved = true;
      if (new Date(pkg.expiresAt).getTime() <= this.now().getTime()) throw new KeyhubError('PACKAGE_EXPIRED', `package expired at ${pkg.expiresAt}`);
      const target = this.targets.get(pkg.target);
      if (!target) throw new KeyhubError('TARGET_UNKNOWN', `no target named ${pkg.target}`);
      const imported = await target.import({
        key: pkg.key,
        wrapped: { kekId: pkg.wrapping.kekId, kekVersion: pkg.wrapping.kekVersion, mechanism: pkg.wrapping.mechanism, blob: Buffer.from(pkg.wrapping.blob, 'base64') },
      });
      result = { outcome: imported.outcome, kcv: imported.kcv };
    } catch (err) {
      const e = KeyhubError.from(err);
      if (e.code === 'HSM_ERROR' || e.code === 'BUS_UNAVAILABLE' || e.code === 'INTERNAL') {
        // Not the package's fault: give the claim back and let the message come again.
        if (reserved) this.journal.release(pkg.sequence, pkg.id);
        throw e;
      }
      const importStage = ['UNWRAP_FAILED', 'KCV_MISMATCH', 'KEY_LENGTH_INVALID', 'TARGET_IMPORT_FAILED', 'KEK_UNKNOWN'].includes(e.code);
      result = { outcome: importStage ? 'failed' : 'rejected', code: e.code, detail: e.message };
      this.logger.warn({ code: e.code, detail: e.message, packageId: pkg.id, sequence: pkg.sequence }, 'package not imported');
    }
    const receipt = await this.keys.sign<Receipt>({
      type: MESSAGE_TYPES.receipt,
      id: randomUUID(),
      listenerId: this.listenerId,
      issuedAt: this.now().toISOString(),
      packageId: pkg.id,
      target: pkg.target,
      outcome: result.outcome,
      ...(result.kcv ? { kcv: result.kcv } : {}),
      ...(result.code ? { error: { code: result.code, detail: (result.detail ?? '').slice(0, 1000) } } : {}),
    });
    // Only packages that claimed their sequence (verified, addressed here, not replayed) are journaled:
    // a forgery or a replay must not move the window.
    if (reserved) {
      this.journal.record({
        packageId: pkg.id,
        sequence: pkg.sequence,
        streamSeq,
        outcome: result.outcome,
        receipt: Buffer.from(encodeEnvelope(receipt)).toString('base64'),
      });
    }
    await this.bus.publishUp('receipt', receipt);
    if (result.outcome === 'imported' || result.outcome === 'already_present') {
      this.logger.info({ packageId: pkg.id, key: pkg.key.name, version: pkg.key.version, target: pkg.target, outcome: result.outcome, kcv: result.kcv }, 'key delivered');
    }
    return { kind: 'receipt', outcome: result.outcome, code: result.code, packageId: pkg.id };
  }
}
