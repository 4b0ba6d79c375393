import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../../context';
import { ListenerEntity } from '../../store/entities';
import { currentRootKek } from '../../store/queries/site-lifecycle';
import { inventoryCountsByTarget, targetKeksOfListener } from '../../store/queries/target-keks';

/**
 * `keyhub listener target list <id>` (and `GET /v1/listeners/:id/targets`):
 * every target the site reported or asked a KEK for, with the KEK its
 * packages travel under (the root KEK, or its own and that KEK's state) and
 * its item count in the last inventory. Health is not stored by the hub
 * yet: heartbeats carry it, but are not persisted per target (null here).
 */
@injectable()
export class ListTargets {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string): Promise<api.TargetView[]> {
    const m = this.ctx.ds.manager;
    const listener = await m.findOne(ListenerEntity, { where: { id: listenerId } });
    if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
    const own = new Map((await targetKeksOfListener(m, listenerId)).map((r) => [r.target, r]));
    const counts = new Map((await inventoryCountsByTarget(m, listenerId)).map((c) => [c.target, c]));
    const root = await currentRootKek(m, listenerId);
    const names = [...new Set([...listener.targets.map((t) => t.name), ...own.keys()])];
    return names.map((name) => {
      const kind = listener.targets.find((t) => t.name === name)?.kind ?? 'pkcs11';
      const k = own.get(name);
      const c = counts.get(name);
      const kek = k
        ? { scope: 'own' as const, state: k.state, kekId: k.wrapped ? k.id : null, version: k.version, kcv: k.kcv, transportFingerprint: k.fingerprint }
        : { scope: 'root' as const, state: root ? 'active' : 'none', kekId: root?.id ?? null, version: root?.version ?? null, kcv: root?.kcv ?? null, transportFingerprint: null };
      return {
        name,
        kind,
        kek,
        health: { healthy: null, detail: null, at: null },
        inventory: { items: c?.items ?? 0, at: c ? c.taken_at.toISOString() : null },
      };
    });
  }
}
