import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { placementByName, updatePlacementSites } from '../../store/queries/placements';
import { placementView } from './placement-view';
import { ReconcilePlacements } from './reconcile-placements';

/**
 * Changes which sites and targets a placement names (ids, selector,
 * targets). Rule: the edit itself is immediate and audited; what it changes
 * at the sites is the reconcile job's, run right after: sites that no
 * longer match get destroy commands; sites that now match get the key, or,
 * for a sensitive key under dual control, become a widening request unless
 * the placement was approved as covering later sites. An edit never widens
 * a sensitive key's reach without an approval.
 */
@injectable()
export class UpdatePlacement {
  constructor(
    private readonly ctx: HubContext,
    private readonly reconcile: ReconcilePlacements,
  ) {}

  async execute(name: string, body: api.UpdatePlacementBody, principal: Principal): Promise<api.PlacementView> {
    await this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const p = await placementByName(m, name, true);
      if (!p) throw new KeyhubError('PLACEMENT_NOT_FOUND', `no placement named "${name}"`);
      const listeners = body.listeners ? [...new Set(body.listeners)] : p.listener_ids;
      const selector = body.selector === undefined ? p.selector : body.selector && Object.keys(body.selector).length ? body.selector : null;
      const targets = body.targets ? [...new Set(body.targets)] : p.targets;
      if (listeners.length === 0 && selector === null) throw new KeyhubError('INPUT_INVALID', 'a placement needs listeners or a non-empty selector');
      await updatePlacementSites(m, p.id, listeners, selector, targets);
      await appendAudit(m, [
        {
          actor: principal.name,
          action: 'placement.updated',
          subject: `placement:${p.name}`,
          details: {
            listeners: listeners.join(','),
            selector: selector
              ? Object.entries(selector)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(',')
              : '',
            targets: targets.join(','),
          },
        },
      ]);
    });
    try {
      await this.reconcile.execute();
    } catch (err) {
      const e = KeyhubError.from(err);
      this.ctx.logger.warn({ code: e.code, detail: e.message }, 'placement updated; its reconcile failed and the job will retry');
    }
    return placementView((await placementByName(this.ctx.ds.manager, name))!);
  }
}
