import { injectable } from 'tsyringe';
import type { RootKekConfirm } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { KekEntity, ListenerEntity } from '../../store/entities';
import { revokeBootstrap } from '../../nats/listener-identity';

/**
 * The listener proves it holds the root KEK by reproducing its KCV. Rule:
 * only then are the KEK and the listener active; a wrong KCV is audited and
 * changes nothing.
 */
@injectable()
export class ConfirmRootKek {
  constructor(private readonly ctx: HubContext) {}

  async execute(msg: RootKekConfirm): Promise<'activated' | 'already_active' | 'kcv_mismatch'> {
    return this.ctx.ds.transaction(async (m): Promise<'activated' | 'already_active' | 'kcv_mismatch'> => {
      const kek = await m.findOne(KekEntity, { where: { id: msg.kekId, listenerId: msg.listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!kek || kek.version !== msg.kekVersion) throw new KeyhubError('KEK_UNKNOWN', `listener ${msg.listenerId} confirmed an unknown KEK`);
      if (kek.state === 'active') return 'already_active';
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
