import { injectable } from 'tsyringe';
import type { RootKekConfirm } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { KekEntity, ListenerEntity } from '../../store/entities';
import { revokeBootstrap } from '../../nats/listener-identity';
import { ConfirmRootKekRotation } from './confirm-root-kek-rotation';

export type RootKekConfirmation = 'activated' | 'already_active' | 'rotated' | 'kcv_mismatch';

/**
 * The listener proves it holds the root KEK by reproducing its KCV. Rule:
 * only then are the KEK and the listener active; a wrong KCV is audited and
 * changes nothing. Only a KEK awaiting confirmation can be confirmed: a
 * compromised, revoked or refused one stays so (KEK_STATE_INVALID). For a
 * site that is already active the KEK is a rotation
 * (confirm-root-kek-rotation.ts).
 */
@injectable()
export class ConfirmRootKek {
  constructor(
    private readonly ctx: HubContext,
    private readonly rotation: ConfirmRootKekRotation,
  ) {}

  async execute(msg: RootKekConfirm): Promise<RootKekConfirmation> {
    return this.ctx.ds.transaction(async (m): Promise<RootKekConfirmation> => {
      const listener = await m.findOne(ListenerEntity, { where: { id: msg.listenerId }, lock: { mode: 'pessimistic_write' } });
      const kek = await m.findOne(KekEntity, { where: { id: msg.kekId, listenerId: msg.listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!listener || !kek || kek.version !== msg.kekVersion) throw new KeyhubError('KEK_UNKNOWN', `listener ${msg.listenerId} confirmed an unknown KEK`);
      if (kek.state === 'active') return 'already_active';
      if (kek.state !== 'pending_confirmation') throw new KeyhubError('KEK_STATE_INVALID', `root KEK v${kek.version} of ${msg.listenerId} is ${kek.state}`);
      if (listener.state === 'active') return this.rotation.executeIn(m, kek, msg);
      if (listener.state !== 'approved') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${msg.listenerId} is ${listener.state}`);
      const actor = `listener:${msg.listenerId}`;
      if (kek.kcv !== msg.kcv) {
        await appendAudit(m, [{ actor, action: 'kek.confirmation_failed', subject: `listener:${msg.listenerId}`, details: { kekId: kek.id, expected: kek.kcv, reported: msg.kcv } }]);
        return 'kcv_mismatch';
      }
      const now = new Date();
      await m.update(KekEntity, { id: kek.id }, { state: 'active', activatedAt: now });
      await m.update(ListenerEntity, { id: msg.listenerId }, { state: 'active', activatedAt: now, lastSeenAt: now });
      await appendAudit(m, [
        { actor, action: 'kek.activated', subject: `listener:${msg.listenerId}`, details: { kekId: kek.id, version: kek.version, kcv: kek.kcv } },
        { actor, action: 'listener.activated', subject: `listener:${msg.listenerId}`, details: {} },
      ]);
      await revokeBootstrap(m, msg.listenerId, actor);
      return 'activated';
    });
  }
}
