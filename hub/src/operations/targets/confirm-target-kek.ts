import { injectable } from 'tsyringe';
import type { TargetKekConfirm } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { activateTargetKek, lockTargetKek } from '../../store/queries/target-keks';

export type TargetKekConfirmation = 'activated' | 'already_active' | 'kcv_mismatch';

/**
 * The site proves the target token holds the target KEK by reproducing its
 * KCV there (signed by its identity key, checked before this runs). Rule:
 * only a KEK awaiting confirmation, confirmed with its own KCV, becomes the
 * target's active KEK (packages for the target are then wrapped under it);
 * a wrong KCV is audited and changes nothing, as for root KEKs.
 */
@injectable()
export class ConfirmTargetKek {
  constructor(private readonly ctx: HubContext) {}

  async execute(msg: TargetKekConfirm): Promise<TargetKekConfirmation> {
    return this.ctx.ds.transaction(async (m): Promise<TargetKekConfirmation> => {
      const row = await lockTargetKek(m, msg.listenerId, msg.kekId);
      if (!row || row.version !== msg.kekVersion || row.target !== msg.target) throw new KeyhubError('KEK_UNKNOWN', `listener ${msg.listenerId} confirmed an unknown target KEK`);
      if (row.state === 'active') return 'already_active';
      if (row.state !== 'pending_confirmation') throw new KeyhubError('TARGET_KEK_STATE_INVALID', `target KEK v${row.version} of ${msg.listenerId}/${msg.target} is ${row.state}`);
      const actor = `listener:${msg.listenerId}`;
      if (row.kcv !== msg.kcv) {
        await appendAudit(m, [{ actor, action: 'target_kek.confirmation_failed', subject: actor, details: { target: row.target, kekId: row.id, expected: row.kcv, reported: msg.kcv } }]);
        return 'kcv_mismatch';
      }
      await activateTargetKek(m, row);
      await appendAudit(m, [{ actor, action: 'target_kek.activated', subject: actor, details: { target: row.target, kekId: row.id, version: row.version, kcv: row.kcv } }]);
      return 'activated';
    });
  }
}
