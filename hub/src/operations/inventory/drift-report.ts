import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { countByKind, type DriftKind } from '../../domain/drift';
import { countFindingsByKind, listFindings } from '../../store/queries/drift';
import { inventorySummaries } from '../../store/queries/inventories';

/** `keyhub status --drift`: the open findings, their counts per kind, and whose inventory they rest on (read-only). */
@injectable()
export class DriftReport {
  constructor(private readonly ctx: HubContext) {}

  async execute(q: { listener?: string; limit: number }): Promise<api.DriftReport> {
    const m = this.ctx.ds.manager;
    const [rows, counts, inventories] = await Promise.all([listFindings(m, q.listener, q.limit), countFindingsByKind(m, q.listener), inventorySummaries(m, q.listener)]);
    const byKind = countByKind([]);
    for (const c of counts) if (c.kind in byKind) byKind[c.kind as DriftKind] = c.n;
    return {
      findings: rows.map((r) => ({
        listenerId: r.listener_id,
        target: r.target,
        kind: r.kind as DriftKind,
        key: r.key_name,
        keyId: r.key_id,
        version: r.version,
        objectId: r.object_id,
        label: r.label,
        expectedKcv: r.expected_kcv,
        reportedKcv: r.reported_kcv,
        expectedState: r.expected_state,
        reportedState: r.reported_state as 'active' | 'disabled' | null,
        firstSeenAt: r.first_seen_at.toISOString(),
        lastSeenAt: r.last_seen_at.toISOString(),
      })),
      counts: byKind,
      inventories: inventories.map((i) => ({ listenerId: i.listener_id, takenAt: i.taken_at.toISOString(), items: i.items })),
    };
  }
}
