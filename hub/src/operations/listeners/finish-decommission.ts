import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { ListenerEntity } from '../../store/entities';
import { findRegistration } from '../../store/queries/nats-identities';
import { dueDecommissions, finishLifecycleEvent, lifecycleCommandIds, pendingCommands, releaseSiteDistributions } from '../../store/queries/site-lifecycle';
import { revokeSiteNatsKeys, siteNatsKeys } from './site-nats-identities';

/**
 * The second half of a decommission: the site's NATS identities (its own
 * user, any open bootstrap) go on the account's revocation list, which cuts
 * its live connections and refuses the next (as RevokeListener does), and
 * the site becomes `decommissioned`, for good. Rule: this runs once every
 * destroy command sent to the site is answered, or when the operator's
 * deadline passes, or at once with --force: never before the destroys had
 * their chance to arrive, and never later than the operator allowed. What
 * is still unanswered then is audited as outstanding, and every distribution
 * still counted at the site is released (superseded: nothing addresses a
 * site that is gone; site_key_records keeps what it held). The stream clean-up
 * (every DOWN message of the site, its consumers) follows (SiteStreamJob).
 */
@injectable()
export class FinishDecommission {
  constructor(private readonly ctx: HubContext) {}

  /** The scheduler's entry: every decommission that is due, each claimed by one replica. */
  async runDue(limit = 20): Promise<number> {
    return this.ctx.ds.transaction(async (m) => {
      const due = await dueDecommissions(m, limit);
      for (const d of due) await this.executeIn(m, d.listener_id, d.id, 'hub', false);
      return due.length;
    });
  }

  async executeIn(m: EntityManager, listenerId: string, eventId: string, actor: string, forced: boolean): Promise<{ revokedNatsKeys: number; destroysOutstanding: number }> {
    const outstanding = await pendingCommands(m, await lifecycleCommandIds(m, eventId));
    const registration = await findRegistration(m, listenerId, true);
    const keys = siteNatsKeys(registration);
    await revokeSiteNatsKeys(m, listenerId, registration, keys, 'listener decommissioned');
    await m.update(ListenerEntity, { id: listenerId }, { state: 'decommissioned' });
    const released = await releaseSiteDistributions(m, listenerId);
    await finishLifecycleEvent(m, eventId);
    await appendAudit(m, [
      {
        actor,
        action: 'listener.decommissioned',
        subject: `listener:${listenerId}`,
        details: { eventId, forced, destroysOutstanding: outstanding, releasedDistributions: released, natsKeys: keys.map((k) => k.key).join(',') },
      },
    ]);
    return { revokedNatsKeys: keys.length, destroysOutstanding: outstanding };
  }
}
