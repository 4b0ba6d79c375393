import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../../context';
import { ListenerEntity } from '../../store/entities';
import { currentRootKek } from '../../store/queries/site-lifecycle';
import { inventoryCountsByTarget, targetKeksOfListener } from '../../store/queries/target-keks';
import { requestedTargetUpdates } from '../../store/queries/target-updates';

/**
 * `keyhub listener target list <id>` (and `GET /v1/listeners/:id/targets`):
 * every target of the site (approved, or awaiting approval of a signed
 * update or of its own KEK), with its kind, the KEK its packages travel
 * under (the root KEK, or its own and that KEK's state), its health in the
 * last heartbeat (and when the hub heard it), its item count in the last
 * inventory, and the update awaiting approval with the settings the site
 * sent. A removed target is not listed.
 */
@injectable()
export class ListTargets {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string): Promise<api.TargetView[]> {
    const m = this.ctx.ds.manager;
    const listener = await m.findOne(ListenerEntity, { where: { id: listenerId } });
    if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
    const own = new Map((await targetKeksOfListener(m, listenerId)).filter((r) => r.state !== 'revoked').map((r) => [r.target, r]));
    const counts = new Map((await inventoryCountsByTarget(m, listenerId)).map((c) => [c.target, c]));
    const updates = new Map((await requestedTargetUpdates(m, listenerId)).map((u) => [u.target, u]));
    const health = new Map((listener.targetHealth ?? []).map((h) => [h.name, h]));
    const heardAt = listener.lastSeenAt ? listener.lastSeenAt.toISOString() : null;
    const root = await currentRootKek(m, listenerId);
    const names = [...new Set([...listener.targets.map((t) => t.name), ...own.keys(), ...updates.keys()])];
    return names.map((name) => {
      const approved = listener.targets.find((t) => t.name === name);
      const u = updates.get(name);
      const kind = approved?.kind ?? u?.kind ?? 'pkcs11';
      const k = own.get(name);
      const c = counts.get(name);
      const h = health.get(name);
      const kek = k
        ? { scope: 'own' as const, state: k.state, kekId: k.wrapped ? k.id : null, version: k.version, kcv: k.kcv, transportFingerprint: k.fingerprint }
        : { scope: 'root' as const, state: root ? 'active' : 'none', kekId: root?.id ?? null, version: root?.version ?? null, kcv: root?.kcv ?? null, transportFingerprint: null };
      return {
        name,
        kind,
        kek,
        health: h ? { healthy: h.healthy, detail: h.detail?.slice(0, 256) ?? null, at: heardAt } : { healthy: null, detail: null, at: null },
        inventory: { items: c?.items ?? 0, at: c ? c.taken_at.toISOString() : null },
        approval: approved ? (u?.op === 'remove' ? ('pending_remove' as const) : ('approved' as const)) : ('pending_add' as const),
        update: u ? { id: u.id, op: u.op, kind: u.kind, settings: u.settings, at: new Date(u.requested_at).toISOString() } : null,
      };
    });
  }
}
