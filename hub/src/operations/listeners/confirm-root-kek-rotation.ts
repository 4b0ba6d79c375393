import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { RootKekConfirm } from '@keyhub/protocol';
import { appendAudit } from '../../audit/audit-log';
import { KekEntity } from '../../store/entities';
import { refusePendingKek, retireOlderKeks } from '../../store/queries/site-lifecycle';

/**
 * The site confirms a rotated root KEK (the same signed `root_kek_confirm`
 * as at enrollment; ConfirmRootKek hands it here when the site is already
 * active). Rules: only a matching KCV activates the new version, and in the
 * same transaction the older active versions are retired on the hub (from
 * then on every package is wrapped under the new one; the site keeps the
 * previous one for packages still in flight). A KCV that does not match
 * refuses the new version for good (revoked, blob wiped, audited): nothing
 * ever travels under a KEK the site could not prove it holds; the operator
 * may rotate again.
 */
@injectable()
export class ConfirmRootKekRotation {
  async executeIn(m: EntityManager, kek: KekEntity, msg: RootKekConfirm): Promise<'rotated' | 'kcv_mismatch'> {
    const actor = `listener:${msg.listenerId}`;
    if (kek.kcv !== msg.kcv) {
      await refusePendingKek(m, kek.id);
      await appendAudit(m, [{ actor, action: 'kek.rotation_refused', subject: `listener:${msg.listenerId}`, details: { kekId: kek.id, version: kek.version, expected: kek.kcv, reported: msg.kcv } }]);
      return 'kcv_mismatch';
    }
    await m.update(KekEntity, { id: kek.id }, { state: 'active', activatedAt: new Date() });
    const retired = await retireOlderKeks(m, msg.listenerId, kek.version);
    await appendAudit(m, [
      {
        actor,
        action: 'kek.rotated',
        subject: `listener:${msg.listenerId}`,
        details: { kekId: kek.id, version: kek.version, kcv: kek.kcv, retired: retired.map((r) => `${r.id}:v${r.version}`).join(',') },
      },
    ]);
    return 'rotated';
  }
}
