import type { api } from '@keyhub/protocol';
import type { PlacementRow } from '../../store/queries/placements';

// Not a use case: how a placement row is shown (list, show, create).

export function placementView(p: PlacementRow, placed?: Array<{ listener_id: string; target: string; version: number }>): api.PlacementView {
  return {
    id: p.id,
    name: p.name,
    key: p.key_name,
    listeners: p.listener_ids,
    selector: p.selector,
    targets: p.targets,
    futureVersions: p.future_versions,
    futureSites: p.future_sites,
    destroyExtras: p.destroy_extras,
    version: p.version,
    approvedSites: p.approved_sites,
    pendingApproval: p.pending_state === 'pending' ? p.pending_request_id : null,
    createdBy: p.created_by,
    createdAt: p.created_at.toISOString(),
    ...(placed ? { placed: placed.map((s) => ({ listenerId: s.listener_id, target: s.target, version: s.version })) } : {}),
  };
}
