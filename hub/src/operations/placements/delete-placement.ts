import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { siteKey } from '../../domain/policy-diff';
import type { Principal } from '../../domain/principal';
import { deletePlacementRow, desiredPlacementSites, listPlacementRows, placedSites, placementByName } from '../../store/queries/placements';
import { queueKeyCommands } from '../commands/queue-key-commands';

/**
 * Deletes a distribution policy. Rule: by default the keys stay where they
 * are (deleting a policy is not a revocation: nothing at the sites changes
 * without being asked for); with `destroy`, what the policy placed is
 * destroyed at each site, except where another policy of the same key still
 * wants it, in the same transaction as the deletion and its audit event.
 */
@injectable()
export class DeletePlacement {
  constructor(private readonly ctx: HubContext) {}

  async execute(name: string, options: { destroy?: boolean }, principal: Principal): Promise<{ name: string; deleted: true; destroyCommands: number }> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const p = await placementByName(m, name, true);
      if (!p) throw new KeyhubError('PLACEMENT_NOT_FOUND', `no placement named "${name}"`);
      let commands = 0;
      if (options.destroy) {
        const others = new Set((await listPlacementRows(m)).filter((o) => o.key_id === p.key_id && o.id !== p.id).map((o) => o.id));
        const keep = new Set((await desiredPlacementSites(m)).filter((s) => others.has(s.placement_id)).map((s) => siteKey({ listenerId: s.listener_id, target: s.target })));
        const mine = (await placedSites(m)).filter((s) => s.placement_id === p.id && !keep.has(siteKey({ listenerId: s.listener_id, target: s.target })));
        const byVersion = new Map<string, Array<{ listenerId: string; target: string }>>();
        for (const s of mine) byVersion.set(s.key_version_id, [...(byVersion.get(s.key_version_id) ?? []), { listenerId: s.listener_id, target: s.target }]);
        const queued = await queueKeyCommands(
          m,
          [...byVersion].map(([keyVersionId, destinations]) => ({ keyVersionId, action: 'destroy' as const, destinations, reason: `placement ${p.name} deleted`, reasonCode: 'policy' as const })),
          principal.name,
        );
        commands = queued.sites;
      }
      await deletePlacementRow(m, p.id);
      await appendAudit(m, [
        { actor: principal.name, action: 'placement.deleted', subject: `placement:${p.name}`, details: { key: p.key_name, destroy: !!options.destroy, destroyCommands: commands } },
      ]);
      return { name: p.name, deleted: true as const, destroyCommands: commands };
    });
  }
}
