import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { listPlacementRows, placedSites, placementByName } from '../../store/queries/placements';
import { placementView } from './placement-view';

/** Reads distribution policies (placements); `show` adds where each has placed its key. */
@injectable()
export class ListPlacements {
  constructor(private readonly ctx: HubContext) {}

  async execute(): Promise<api.PlacementView[]> {
    return (await listPlacementRows(this.ctx.ds.manager)).map((p) => placementView(p));
  }

  async show(name: string): Promise<api.PlacementView> {
    const m = this.ctx.ds.manager;
    const p = await placementByName(m, name);
    if (!p) throw new KeyhubError('PLACEMENT_NOT_FOUND', `no placement named "${name}"`);
    const placed = (await placedSites(m))
      .filter((s) => s.placement_id === p.id)
      .sort((a, b) => a.listener_id.localeCompare(b.listener_id) || a.target.localeCompare(b.target) || a.version - b.version);
    return placementView(p, placed);
  }
}
