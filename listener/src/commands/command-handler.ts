import { randomUUID } from 'node:crypto';
import {
  commandSha256,
  encodeEnvelope,
  MESSAGE_TYPES,
  storableText,
  TOMBSTONE_KEY_COMMAND_ACTIONS,
  verifyEnvelope,
  type CommandEffect,
  type CommandOutcome,
  type CommandReceipt,
  type ErrorCode,
  type KeyCommand,
  type SignedEnvelope,
} from '@keyhub/protocol';
import { KeyhubError, type Logger } from '@keyhub/shared';
import type { ListenerBus } from '../bus/listener-bus';
import type { ListenerKeys } from '../listener-keys';
import type { CommandJournal } from '../state/command-journal';
import type { HubKeyStore } from '../state/hub-key';
import type { Tombstones } from '../state/tombstones';
import type { Target } from '../targets/target';

export type CommandResult =
  | { kind: 'command'; commandId: string; action: KeyCommand['action']; outcome: CommandOutcome; effect?: CommandEffect; code?: ErrorCode }
  | { kind: 'command_replayed'; commandId: string; action: KeyCommand['action'] }
  | { kind: 'dropped'; code: ErrorCode };

/** Failures that are not the command's: it comes again (nak) and is tried again. */
const PASSING_FAILURES: ReadonlySet<ErrorCode> = new Set(['HSM_ERROR', 'BUS_UNAVAILABLE', 'INTERNAL']);

/**
 * Lifecycle commands from the hub (protocol/src/messages/key-commands.ts).
 * Rule, as for packages: a command that does not verify under the pinned
 * hub key earns nothing (dropped, no receipt). A verified one is carried
 * out once per command id: a copy (re-send, replay) is answered with the
 * receipt journaled the first time and changes nothing. Then, each refusal
 * earning a signed `rejected` receipt: addressee, expiry (compromise and
 * destroy never expire), target, a version already tombstoned (only
 * compromise and destroy still apply to it), a newer command already
 * carried out for the version and target. compromise and destroy write the
 * tombstone (synced) before they touch the target (a destroy because the
 * site left a distribution policy, reason 'policy', only for its target and
 * for packages issued before it: the version lives on and may come back), so a package of the
 * version arriving meanwhile is already refused. The receipt names the
 * SHA-256 of the exact command envelope; the message is acked only after
 * the receipt is journaled and published.
 */
export class CommandHandler {
  constructor(
    private readonly listenerId: string,
    private readonly keys: ListenerKeys,
    private readonly hubKeys: HubKeyStore,
    private readonly journal: CommandJournal,
    private readonly tombstones: Tombstones,
    private readonly targets: Map<string, Target>,
    private readonly bus: Pick<ListenerBus, 'publishUp'>,
    private readonly logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async handle(envelope: SignedEnvelope<KeyCommand>, data: Uint8Array): Promise<CommandResult> {
    const hubKey = this.hubKeys.load();
    if (!hubKey) return { kind: 'dropped', code: 'NOT_ENROLLED' };
    if (!verifyEnvelope(envelope, hubKey)) return { kind: 'dropped', code: 'SIGNATURE_INVALID' };
    const cmd = envelope.payload;
    const sha256 = commandSha256(data);
    const known = this.journal.get(cmd.id);
    if (known && known.sha256 === sha256) {
      // Carried out before: the same answer again, nothing done twice.
      await this.bus.publishUp('command_receipt', JSON.parse(Buffer.from(known.receipt, 'base64').toString('utf8')));
      return { kind: 'command_replayed', commandId: cmd.id, action: cmd.action };
    }
    let result: { outcome: CommandOutcome; effect?: CommandEffect; code?: ErrorCode; detail?: string };
    try {
      if (known) throw new KeyhubError('COMMAND_REPLAYED', `command ${cmd.id} was already carried out here from other bytes`);
      result = await this.carryOut(cmd);
    } catch (err) {
      const e = KeyhubError.from(err);
      if (PASSING_FAILURES.has(e.code)) throw e;
      const refused = ['PACKAGE_WRONG_LISTENER', 'COMMAND_EXPIRED', 'TARGET_UNKNOWN', 'KEY_VERSION_REVOKED', 'COMMAND_SUPERSEDED', 'COMMAND_REPLAYED'].includes(e.code);
      result = { outcome: refused ? 'rejected' : 'failed', code: e.code, detail: e.message };
      this.logger.warn({ code: e.code, ckr: e.ckr, detail: e.message, commandId: cmd.id, action: cmd.action }, 'key command not carried out');
    }
    const receipt = await this.keys.sign<CommandReceipt>({
      type: MESSAGE_TYPES.commandReceipt,
      id: randomUUID(),
      listenerId: this.listenerId,
      issuedAt: this.now().toISOString(),
      commandId: cmd.id,
      commandSha256: sha256,
      target: cmd.target,
      action: cmd.action,
      outcome: result.outcome,
      ...(result.effect ? { effect: result.effect } : {}),
      ...(result.code ? { error: { code: result.code, detail: storableText(result.detail ?? '', 1000) } } : {}),
    });
    if (!known) {
      this.journal.record({
        commandId: cmd.id,
        sha256,
        keyId: cmd.key.id,
        version: cmd.key.version,
        target: cmd.target,
        action: cmd.action,
        issuedAt: cmd.issuedAt,
        outcome: result.outcome,
        receipt: Buffer.from(encodeEnvelope(receipt)).toString('base64'),
      });
    }
    await this.bus.publishUp('command_receipt', receipt);
    this.logger.info(
      { commandId: cmd.id, action: cmd.action, key: cmd.key.name, version: cmd.key.version, target: cmd.target, outcome: result.outcome, effect: result.effect },
      'key command answered',
    );
    return { kind: 'command', commandId: cmd.id, action: cmd.action, outcome: result.outcome, effect: result.effect, code: result.code };
  }

  private async carryOut(cmd: KeyCommand): Promise<{ outcome: CommandOutcome; effect: CommandEffect }> {
    if (cmd.listenerId !== this.listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', `command is addressed to listener ${cmd.listenerId}`);
    if (cmd.expiresAt && new Date(cmd.expiresAt).getTime() <= this.now().getTime()) throw new KeyhubError('COMMAND_EXPIRED', `command expired at ${cmd.expiresAt}`);
    const target = this.targets.get(cmd.target);
    if (!target) throw new KeyhubError('TARGET_UNKNOWN', `no target named ${cmd.target}`);
    const ref = { keyId: cmd.key.id, version: cmd.key.version };
    const tomb = TOMBSTONE_KEY_COMMAND_ACTIONS.has(cmd.action);
    const dead = this.tombstones.get(ref.keyId, ref.version);
    if (dead && !tomb) throw new KeyhubError('KEY_VERSION_REVOKED', `version ${ref.version} of key ${cmd.key.name} was ${dead.action === 'destroy' ? 'destroyed' : 'marked compromised'} here`);
    const newest = this.journal.newestFor(ref.keyId, ref.version, cmd.target);
    if (!tomb && newest && newest > cmd.issuedAt) throw new KeyhubError('COMMAND_SUPERSEDED', `a command issued at ${newest} was already carried out for this version here`);
    // A destroy because the site left a distribution policy ends the version at this target only, for what was queued before it.
    const scope = cmd.action === 'destroy' && cmd.reason === 'policy' ? { target: cmd.target, before: cmd.issuedAt } : {};
    if (tomb) this.tombstones.add({ keyId: ref.keyId, version: ref.version, action: cmd.action as 'compromise' | 'destroy', commandId: cmd.id, at: this.now().toISOString(), ...scope });
    switch (cmd.action) {
      case 'suspend':
        return { outcome: 'done', effect: await target.suspend(ref) };
      case 'resume':
        return { outcome: 'done', effect: await target.resume(ref, cmd.key.usages) };
      case 'deactivate':
        return { outcome: 'done', effect: await target.deactivate(ref, cmd.key.usages) };
      case 'compromise':
        return { outcome: 'done', effect: await target.compromise(ref) };
      case 'destroy':
        return { outcome: 'done', effect: (await target.destroy(ref)) ? 'destroyed' : 'absent' };
    }
  }
}
