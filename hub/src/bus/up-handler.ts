import type { JsMsg } from 'nats';
import { decodeEnvelope, isEnvelopeOf, listenerIdFromUpSubject, MESSAGE_TYPES } from '@keyhub/protocol';
import { KeyhubError, RateLimitedLog, type Logger } from '@keyhub/shared';
import type { ApplyCommandReceipt } from '../operations/commands/apply-command-receipt';
import type { ApplyReceipt } from '../operations/distributions/apply-receipts';
import type { ProcessInventory } from '../operations/inventory/process-inventory';
import type { ConfirmRootKek } from '../operations/listeners/confirm-root-kek';
import type { RegisterEnrollment } from '../operations/listeners/register-enrollment';
import type { VerifyListenerSignature } from '../operations/listeners/verify-listener-signature';
import type { ConfirmTargetKek } from '../operations/targets/confirm-target-kek';
import type { RegisterTargetKekRequest } from '../operations/targets/register-target-kek-request';
import type { RegisterTargetUpdate } from '../operations/targets/register-target-update';
import { errorSummary } from './hub-bus';
import { ReceiptBatcher } from './receipt-batcher';

/**
 * Everything a listener sends on the UP stream. Order of checks: size and
 * schema, subject matches the claimed listener, signature under the key we
 * hold for that listener, then the operation. Everything before the
 * operation is done without a database transaction, so input that does not
 * verify never reaches the audit chain's lock (an enrollment is checked
 * against the identity key it carries before its transaction starts). Bad
 * messages are terminated (never redelivered) and logged with their code;
 * transient failures are retried with a delay. A receipt that names another
 * package's hash is refused with RECEIPT_PACKAGE_MISMATCH and changes nothing.
 */
export class UpHandler {
  private readonly receipts: ReceiptBatcher;
  /** Rejections are caused by whoever publishes: logged by code, at a bounded rate. */
  private readonly rejections: RateLimitedLog;
  /** Signed inventories (operations/inventory/process-inventory.ts); without it, inventories are refused as unexpected. */
  processInventory?: ProcessInventory;
  /** Per-target KEK requests and confirmations (operations/targets); without them, both are refused as unexpected. */
  targetKeks?: { register: RegisterTargetKekRequest; confirm: ConfirmTargetKek };
  /** Signed target updates (operations/targets/register-target-update.ts); without it, refused as unexpected. */
  targetUpdates?: RegisterTargetUpdate;

  constructor(
    private readonly verifySignature: VerifyListenerSignature,
    private readonly registerEnrollment: RegisterEnrollment,
    private readonly confirmRootKek: ConfirmRootKek,
    applyReceipt: ApplyReceipt,
    private readonly logger: Logger,
    private readonly onReceipt?: (effect: string) => void,
    /** After a root KEK is active: the bus removes the listener's one-time messages from the stream. */
    private readonly onRootKekActive?: (listenerId: string) => Promise<void>,
    /** Answers to lifecycle commands (operations/commands/apply-command-receipt.ts). */
    private readonly applyCommandReceipt?: ApplyCommandReceipt,
  ) {
    this.receipts = new ReceiptBatcher((batch) => applyReceipt.executeBatch(batch));
    this.rejections = new RateLimitedLog(logger);
  }

  async handle(msg: JsMsg): Promise<void> {
    try {
      await this.process(msg.subject, msg.data);
      msg.ack();
    } catch (err) {
      const e = KeyhubError.from(err);
      if (e.retryable || isDatabaseError(err)) {
        this.logger.warn({ err: errorSummary(e), subject: msg.subject }, 'UP message will be retried');
        msg.nak(2_000);
      } else {
        this.rejections.warn(e.code, { code: e.code, detail: e.message, subject: msg.subject }, 'UP message rejected');
        msg.term();
      }
    }
  }

  async process(subject: string, data: Uint8Array): Promise<void> {
    const listenerId = listenerIdFromUpSubject(subject);
    if (!listenerId) throw new KeyhubError('MESSAGE_MALFORMED', `unexpected subject ${subject}`);
    const decoded = decodeEnvelope(data);
    if (!decoded.ok) throw new KeyhubError(decoded.code, decoded.detail);
    const envelope = decoded.envelope;
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.enrollmentRequest)) {
      const r = await this.registerEnrollment.execute(envelope, listenerId);
      this.logger.info({ listenerId, fingerprint: r.fingerprint }, 'enrollment request recorded; awaiting approval');
      return;
    }
    if (!('listenerId' in envelope.payload)) throw new KeyhubError('MESSAGE_UNKNOWN_TYPE', `${envelope.payload.type} is not expected from a listener`);
    if (envelope.payload.listenerId !== listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', 'message listener id differs from its subject');
    await this.verifySignature.execute(envelope, listenerId);
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.rootKekConfirm)) {
      const r = await this.confirmRootKek.execute(envelope.payload);
      this.logger.info({ listenerId, result: r }, 'root KEK confirmation');
      if (r !== 'kcv_mismatch') await this.onRootKekActive?.(listenerId);
      return;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.receipt)) {
      const effect = await this.receipts.submit(envelope.payload);
      this.onReceipt?.(effect);
      if (effect === 'package_mismatch') {
        throw new KeyhubError('RECEIPT_PACKAGE_MISMATCH', `receipt for package ${envelope.payload.packageId} names a hash that is not that package's`);
      }
      this.logger.debug({ listenerId, packageId: envelope.payload.packageId, outcome: envelope.payload.outcome, effect }, 'receipt applied');
      return;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.commandReceipt) && this.applyCommandReceipt) {
      const effect = await this.applyCommandReceipt.execute(envelope.payload, listenerId);
      this.logger.info({ listenerId, commandId: envelope.payload.commandId, action: envelope.payload.action, outcome: envelope.payload.outcome, effect }, 'command receipt applied');
      return;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.inventory) && this.processInventory) {
      const r = await this.processInventory.execute(envelope.payload);
      this.logger.debug({ listenerId, reportId: envelope.payload.reportId, part: envelope.payload.part, of: envelope.payload.of, outcome: r.outcome, drift: r.scan?.counts }, 'inventory part taken');
      return;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.targetKekRequest) && this.targetKeks) {
      const r = await this.targetKeks.register.execute(envelope.payload);
      this.logger.info({ listenerId, target: envelope.payload.target, version: r.version, fingerprint: r.fingerprint, outcome: r.outcome }, 'target KEK request recorded; awaiting approval');
      return;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.targetUpdate) && this.targetUpdates) {
      const r = await this.targetUpdates.execute(envelope.payload);
      this.logger.info(
        { listenerId, target: envelope.payload.target, op: envelope.payload.op, kind: envelope.payload.kind, updateId: r.updateId, outcome: r.outcome },
        'target update recorded; awaiting approval',
      );
      return;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.targetKekConfirm) && this.targetKeks) {
      const r = await this.targetKeks.confirm.execute(envelope.payload);
      this.logger.info({ listenerId, target: envelope.payload.target, result: r }, 'target KEK confirmation');
      return;
    }
    throw new KeyhubError('MESSAGE_UNKNOWN_TYPE', `${envelope.payload.type} is not expected from a listener`);
  }
}

function isDatabaseError(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  // Connection failures, serialization/deadlock, admin shutdown: all worth another try.
  return /^(08|40|57P)/.test(code) || /ECONNREFUSED|ECONNRESET|Connection terminated/i.test(err instanceof Error ? err.message : '');
}
