import { injectable } from 'tsyringe';
import { HubContext } from '../../context';
import { distributionProgressRows } from '../../store/queries/distributions';

export interface DistributionProgressRow {
  id: string;
  state: string;
  errorCode: string | null;
}

/**
 * Current state of a set of distributions, for `--wait` and scripts that
 * follow a bulk push. Rule: read-only; an unknown id is simply absent.
 */
@injectable()
export class DistributionProgress {
  constructor(private readonly ctx: HubContext) {}

  async execute(ids: string[]): Promise<DistributionProgressRow[]> {
    if (ids.length === 0) return [];
    const rows = await distributionProgressRows(this.ctx.ds, ids);
    return rows.map((r) => ({ id: r.id, state: r.state, errorCode: r.error_code }));
  }
}
