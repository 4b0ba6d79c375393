import { randomUUID } from 'node:crypto';
import {
  AUDIT_CHECKPOINT_TYPE,
  decodeEnvelope,
  encodeEnvelope,
  isEnvelopeOf,
  KEY_LENGTH_BYTES,
  DEFAULT_TARGET_KINDS,
  MESSAGE_TYPES,
  packageSha256,
  storableText,
  verifyEnvelope,
  VerifiedBatches,
  type ErrorCode,
  type KeyPackage,
  type Receipt,
  type RootKekMessage,
  type SignedEnvelope,
} from '@keyhub/protocol';
import { aesKcv, KeyhubError, RateLimitedLog, type Logger } from '@keyhub/shared';
import type { ListenerBus } from './bus/listener-bus';
import type { CheckpointWitness } from './checkpoint-witness';
import { handleRootKekRotation } from './enrollment/root-kek-rotation';
import { receiveCeremony, type CeremonyDeps } from './enrollment/root-kek-ceremony';
import type { CommandHandler, CommandResult } from './commands/command-handler';
import type { Tombstones } from './state/tombstones';
import type { ListenerKeys } from './listener-keys';
import type { HubKeyStore } from './state/hub-key';
import type { Journal } from './state/journal';
import type { Target } from './targets/target';
import type { ImportGates } from './targets/import-slots';
import { handleTargetKek, handleTargetKekRotation, type TargetKekDeps } from './targets/target-keks';

/** The part of a JetStream message the inbox needs; lets tests feed it directly. */
export interface InboundMessage {
  data: Uint8Array;
  /** Stream sequence: the same on a redelivery, different for a re-published copy. */
  streamSeq: number;
  /**
   * True on the last delivery the consumer will make (its max_deliver): a
   * verified package that fails for a passing reason then ends with a failed
   * receipt carrying that reason's code instead of waiting for a redelivery
   * that will not come.
   */
  lastAttempt?: boolean;
}

export type InboxResult =
  | { kind: 'root_kek'; result: 'stored' | 'present' }
  | { kind: 'root_kek_ceremony'; result: 'stored' | 'present' }
  | { kind: 'receipt'; outcome: Receipt['outcome']; code?: ErrorCode; packageId: string }
  | { kind: 'redelivered'; packageId: string }
  | { kind: 'dropped'; code: ErrorCode }
  | { kind: 'checkpoint'; result: 'stored' | 'present'; seq: number }
  | { kind: 'target_kek'; target: string; result: 'stored' | 'present' }
  | CommandResult;

/** Failures that are not the package's: the same package may well import on the next delivery. */
// A keystore that cannot be written and a cloud down after its own retries pass too: the package comes again, nothing is lost.
const PASSING_FAILURES: ReadonlySet<ErrorCode> = new Set(['HSM_ERROR', 'BUS_UNAVAILABLE', 'INTERNAL', 'KEYSTORE_NOT_WRITABLE', 'CLOUD_UNAVAILABLE', 'TARGET_UNAVAILABLE']);

/** Failures of the import itself (outcome `failed`); the other refusals of a verified package are `rejected`. */
const IMPORT_STAGE: ReadonlySet<ErrorCode> = new Set(['UNWRAP_FAILED', 'KCV_MISMATCH', 'KEY_LENGTH_INVALID', 'TARGET_IMPORT_FAILED', 'KEK_UNKNOWN', ...PASSING_FAILURES]);

/**
 * Everything the hub sends this listener. Rule: input that did not verify
 * earns nothing: no receipt, no journal entry, no change of the replay
 * window; it is counted (the `dropped` result, a metric), logged without its
 * payload (rate-limited: anyone who can publish can trigger it) and dropped
 * (the caller terminates the message). A copy of a real package with a
 * garbage signature is such input, so it can no longer make the hub fail
 * the genuine distribution.
 *
 * For a key package the checks run in this order: schema and size, hub
 * signature, then (verified from here on, so each failure earns a signed
 * receipt) addressee, replay (sequence), expiry, target, and the import,
 * whose KCV is computed at the target. Every receipt names the SHA-256 of
 * the exact envelope bytes it answers, and the hub applies it only to that
 * package. The message is acked only after the receipt is journaled and
 * published, so a crash repeats work but never loses it.
 */
export class Inbox {
  /** Batch signatures already checked: packages of one batch cost one ECDSA verification, not one each. */
  private readonly batches = new VerifiedBatches();
  /** Root KEK ceremonies (enrollment/root-kek-ceremony.ts); set by the agent. */
  ceremonies?: CeremonyDeps;
  /** Keeps the hub's signed audit checkpoints (listener/src/checkpoint-witness.ts); set by the agent. */
  witness?: CheckpointWitness;
  /** Lifecycle commands (commands/command-handler.ts); set by the agent. */
  commands?: CommandHandler;
  /** Versions this site was told are compromised or destroyed: their packages are refused (KEY_VERSION_REVOKED); set by the agent. */
  tombstones?: Tombstones;
  /** Per-target KEKs (targets/target-keks.ts); set by the agent. */
  targetKeks?: TargetKekDeps;
  /** How many imports run at once per target (targets/import-slots.ts); set by the agent. Absent: as many as are handled at once. */
  importGates?: ImportGates;
  private readonly unverified: RateLimitedLog;

  constructor(
    private readonly listenerId: string,
    private readonly keys: ListenerKeys,
    private readonly hubKeys: HubKeyStore,
    private readonly journal: Journal,
    private readonly targets: Map<string, Target>,
    private readonly bus: Pick<ListenerBus, 'publishUp'>,
    private readonly logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.unverified = new RateLimitedLog(logger);
  }

  async handle(msg: InboundMessage): Promise<InboxResult> {
    const decoded = decodeEnvelope(msg.data);
    if (!decoded.ok) return this.drop(decoded.code, msg.streamSeq, 'message dropped: not a message of ours');
    const envelope = decoded.envelope;
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.rootKek)) return this.handleRootKek(envelope, msg.streamSeq);
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.rootKekCeremony) && this.ceremonies) {
      const r = await receiveCeremony(this.ceremonies, envelope, msg.data);
      return r.kind === 'dropped' ? this.drop(r.code, msg.streamSeq, 'root KEK ceremony dropped: it did not verify or this site is not enrolling') : r;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.rootKekRotation)) {
      const deps = { listenerId: this.listenerId, keys: this.keys, hubKeys: this.hubKeys, bus: this.bus, logger: this.logger, now: this.now };
      const r = await handleRootKekRotation(deps, envelope);
      return r.kind === 'dropped' ? this.drop(r.code, msg.streamSeq, 'root KEK rotation dropped: it did not verify or cannot be installed here') : r;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.targetKek) && this.targetKeks) {
      const r = await handleTargetKek(this.targetKeks, envelope);
      return r.kind === 'dropped' ? this.drop(r.code, msg.streamSeq, 'target KEK dropped: it did not verify or cannot be installed here') : r;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.targetKekRotation) && this.targetKeks) {
      const r = await handleTargetKekRotation(this.targetKeks, envelope);
      return r.kind === 'dropped' ? this.drop(r.code, msg.streamSeq, 'target KEK rotation dropped: it did not verify or cannot be installed here') : r;
    }
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.keyPackage)) return this.handlePackage(envelope, msg);
    if (isEnvelopeOf(envelope, AUDIT_CHECKPOINT_TYPE) && this.witness) return this.witness.handle(envelope);
    if (isEnvelopeOf(envelope, MESSAGE_TYPES.keyCommand) && this.commands) {
      const r = await this.commands.handle(envelope, msg.data);
      return r.kind === 'dropped' ? this.drop(r.code, msg.streamSeq, 'command dropped: it did not verify under the pinned hub key') : r;
    }
    return this.drop('MESSAGE_UNKNOWN_TYPE', msg.streamSeq, 'message dropped: not expected from the hub');
  }

  /** Counted by the caller (from the result), logged here without the payload, never answered. */
  private drop(code: ErrorCode, streamSeq: number, msg: string): InboxResult {
    this.unverified.warn(code, { code, streamSeq }, msg);
    return { kind: 'dropped', code };
  }

  private async handleRootKek(envelope: SignedEnvelope<RootKekMessage>, streamSeq: number): Promise<InboxResult> {
    const msg = envelope.payload;
    const hubKey = Buffer.from(msg.hubKey, 'base64');
    try {
      this.hubKeys.assertPinned(hubKey);
      if (!verifyEnvelope(envelope, hubKey)) throw new KeyhubError('SIGNATURE_INVALID', 'root KEK message is not signed by the hub key it carries');
      if (msg.listenerId !== this.listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', `root KEK is for listener ${msg.listenerId}`);
    } catch (err) {
      return this.drop(KeyhubError.from(err).code, streamSeq, 'root KEK message dropped: it did not verify or is not for this listener');
    }
    this.hubKeys.save(hubKey);
    const result = await this.keys.unwrapRootKek(Buffer.from(msg.kek.blob, 'base64'), msg.kek.oaepHash, msg.kek.id, msg.kek.version, (h) => aesKcv(this.keys.hsm, h), msg.kek.kcv);
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

  private async handlePackage(envelope: SignedEnvelope<KeyPackage>, msg: InboundMessage): Promise<InboxResult> {
    const pkg = envelope.payload;
    const hubKey = this.hubKeys.load();
    // Before the hub key is pinned nothing can be verified, so nothing is answered.
    if (!hubKey) return this.drop('NOT_ENROLLED', msg.streamSeq, 'package dropped: no pinned hub key yet');
    if (!verifyEnvelope(envelope, hubKey, this.batches)) return this.drop('SIGNATURE_INVALID', msg.streamSeq, 'package dropped: signature does not verify under the pinned hub key');
    const sha256 = packageSha256(msg.data);
    const known = this.journal.get(pkg.id);
    if (known && known.streamSeq === msg.streamSeq && (known.sha256 === undefined || known.sha256 === sha256)) {
      // Redelivery of a message we processed but could not ack: same receipt, no second import.
      await this.bus.publishUp('receipt', JSON.parse(Buffer.from(known.receipt, 'base64').toString('utf8')));
      return { kind: 'redelivered', packageId: pkg.id };
    }
    let reserved = false;
    let result: { outcome: Receipt['outcome']; kcv?: string; cloud?: Receipt['cloud']; code?: ErrorCode; detail?: string };
    try {
      if (pkg.listenerId !== this.listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', `package is addressed to listener ${pkg.listenerId}`);
      if (known || !this.journal.reserve(pkg.sequence, pkg.id)) {
        throw new KeyhubError('PACKAGE_REPLAYED', `sequence ${pkg.sequence} was already used or is older than the replay window (highest ${this.journal.lastSequence})`);
      }
      reserved = true;
      if (new Date(pkg.expiresAt).getTime() <= this.now().getTime()) throw new KeyhubError('PACKAGE_EXPIRED', `package expired at ${pkg.expiresAt}`);
      // Even a package queued before the command: a compromised or destroyed version never comes back.
      if (this.tombstones?.has(pkg.key.id, pkg.key.version, pkg.target, pkg.issuedAt)) throw revoked(pkg);
      const target = this.targets.get(pkg.target);
      if (!target) throw new KeyhubError('TARGET_UNKNOWN', `no target named ${pkg.target}`);
      // The key's policy, signed by the hub, names the kinds of target it may reach: an HSM-only key never leaves for a keystore or a cloud, whatever this site's configuration says.
      const allowed: readonly string[] = pkg.key.targetKinds ?? DEFAULT_TARGET_KINDS;
      if (!allowed.includes(target.kind)) throw new KeyhubError('TARGET_KIND_NOT_ALLOWED', `the policy of ${pkg.key.name} allows ${allowed.join(', ')} targets, not ${target.kind}`);
      // The schema bounds the length; that it is the algorithm's is checked before any target sees the key (found by test/src/fuzz).
      const expectedLength = KEY_LENGTH_BYTES[pkg.key.algorithm];
      if (pkg.key.length !== expectedLength) throw new KeyhubError('KEY_LENGTH_INVALID', `an ${pkg.key.algorithm} key is ${expectedLength} bytes, the package says ${pkg.key.length}`);
      const request = {
        key: pkg.key,
        wrapped: { kekId: pkg.wrapping.kekId, kekVersion: pkg.wrapping.kekVersion, mechanism: pkg.wrapping.mechanism, blob: Buffer.from(pkg.wrapping.blob, 'base64') },
      };
      const imported = this.importGates ? await this.importGates.run(target, () => target.import(request)) : await target.import(request);
      // A command that arrived during the import waits for it (the target's per-version lock), then disables or destroys it.
      if (this.tombstones?.has(pkg.key.id, pkg.key.version, pkg.target, pkg.issuedAt)) throw revoked(pkg);
      result = { outcome: imported.outcome, kcv: imported.kcv, ...(imported.cloud ? { cloud: imported.cloud } : {}) };
    } catch (err) {
      const e = KeyhubError.from(err);
      if (PASSING_FAILURES.has(e.code) && !msg.lastAttempt) {
        // Not the package's fault: give the claim back and let the message come again.
        if (reserved) this.journal.release(pkg.sequence, pkg.id);
        throw e;
      }
      result = { outcome: IMPORT_STAGE.has(e.code) ? 'failed' : 'rejected', code: e.code, detail: e.message };
      const last = PASSING_FAILURES.has(e.code) ? ' (last delivery attempt: it ends here)' : '';
      this.logger.warn({ code: e.code, ckr: e.ckr, detail: e.message, packageId: pkg.id, sequence: pkg.sequence }, `package not imported${last}`);
    }
    const receipt = await this.keys.sign<Receipt>({
      type: MESSAGE_TYPES.receipt,
      id: randomUUID(),
      listenerId: this.listenerId,
      issuedAt: this.now().toISOString(),
      packageId: pkg.id,
      packageSha256: sha256,
      target: pkg.target,
      outcome: result.outcome,
      ...(result.kcv ? { kcv: result.kcv } : {}),
      ...(result.cloud ? { cloud: result.cloud } : {}),
      ...(result.code ? { error: { code: result.code, detail: storableText(result.detail ?? '', 1000) } } : {}),
    });
    // Only packages that claimed their sequence (verified, addressed here, not replayed) are journaled:
    // a replay must not move the window.
    if (reserved) {
      this.journal.record({
        packageId: pkg.id,
        sequence: pkg.sequence,
        streamSeq: msg.streamSeq,
        outcome: result.outcome,
        receipt: Buffer.from(encodeEnvelope(receipt)).toString('base64'),
        sha256,
      });
    }
    await this.bus.publishUp('receipt', receipt);
    if (result.outcome === 'imported' || result.outcome === 'already_present') {
      this.logger.info({ packageId: pkg.id, key: pkg.key.name, version: pkg.key.version, target: pkg.target, outcome: result.outcome, kcv: result.kcv }, 'key delivered');
    }
    return { kind: 'receipt', outcome: result.outcome, code: result.code, packageId: pkg.id };
  }
}

function revoked(pkg: KeyPackage): KeyhubError {
  return new KeyhubError('KEY_VERSION_REVOKED', `version ${pkg.key.version} of key ${pkg.key.name} was marked compromised or destroyed here; nothing of it is imported`);
}
