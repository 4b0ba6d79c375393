import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { MAX_TARGET_KEK_RETIRE, type TargetKekConfirm } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { activateTargetKek, lockTargetKek, markTargetKeksDestroyed, refuseTargetKek, targetKekVersion, targetKeksToDestroy, type TargetKekRow } from '../../store/queries/target-keks';

export type TargetKekConfirmation = 'activated' | 'rotated' | 'already_active' | 'kcv_mismatch';

/**
 * The site proves the target token holds the target KEK by reproducing its
 * KCV there (signed by its identity key, checked before this runs). Rule:
 * only a KEK awaiting confirmation, confirmed with its own KCV, becomes the
 * target's active KEK (packages for the target are then wrapped under it;
 * the one before is retired). For a KEK from an approval, a wrong KCV is
 * audited and changes nothing, as for root KEKs at enrollment. For a
 * rotated KEK (rotate-target-kek.ts) a wrong KCV refuses it for good
 * (blob wiped, audited; the operator may rotate again), and a matching one
 * also records as destroyed the older versions the rotation told the site
 * to destroy.
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
      if (row.wrapped_under) return this.confirmRotation(m, row, msg);
      const actor = `listener:${msg.listenerId}`;
      if (row.kcv !== msg.kcv) {
        await appendAudit(m, [{ actor, action: 'target_kek.confirmation_failed', subject: actor, details: { target: row.target, kekId: row.id, expected: row.kcv, reported: msg.kcv } }]);
        return 'kcv_mismatch';
      }
      const retired = await activateTargetKek(m, row);
      await appendAudit(m, [
        {
          actor,
          action: 'target_kek.activated',
          subject: actor,
          details: { target: row.target, kekId: row.id, version: row.version, kcv: row.kcv, retired: retired.map((r) => `${r.id}:v${r.version}`).join(',') },
        },
      ]);
      return 'activated';
    });
  }

  private async confirmRotation(m: EntityManager, row: TargetKekRow, msg: TargetKekConfirm): Promise<TargetKekConfirmation> {
    const actor = `listener:${msg.listenerId}`;
    if (row.kcv !== msg.kcv) {
      await refuseTargetKek(m, row.id);
      await appendAudit(m, [
        { actor, action: 'target_kek.rotation_refused', subject: actor, details: { target: row.target, kekId: row.id, version: row.version, expected: row.kcv, reported: msg.kcv } },
      ]);
      return 'kcv_mismatch';
    }
    const under = await targetKekVersion(m, row.wrapped_under!);
    // What the rotation told the site to destroy, as it was computed then (nothing retires between a rotation and its confirmation).
    const told = under === undefined ? [] : await targetKeksToDestroy(m, row.listener_id, row.target, under, MAX_TARGET_KEK_RETIRE);
    const destroyed = await markTargetKeksDestroyed(
      m,
      told.map((t) => t.id),
    );
    const retired = await activateTargetKek(m, row);
    await appendAudit(m, [
      {
        actor,
        action: 'target_kek.rotated',
        subject: actor,
        details: {
          target: row.target,
          kekId: row.id,
          version: row.version,
          kcv: row.kcv,
          retired: retired.map((r) => `${r.id}:v${r.version}`).join(','),
          destroyedAtSite: destroyed.map((r) => `${r.id}:v${r.version}`).join(','),
        },
      },
    ]);
    return 'rotated';
  }
}
