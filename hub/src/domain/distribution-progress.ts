import { injectable } from 'tsyringe';
import { HubContext } from '../context';

export interface DistributionProgressRow {
  id: string;
  state: string;
  errorCode: string | null;
}

/** Current state of a set of distributions, for `--wait` and scripts that follow a bulk push. */
@injectable()
export class DistributionProgress {
  constructor(private readonly ctx: HubContext) {}

  async execute(ids: string[]): Promise<DistributionProgressRow[]> {
    if (ids.length === 0) return [];
    const rows: Array<{ id: string; state: string; error_code: string | null }> = await this.ctx.ds.query(
      'SELECT id, state, error_code FROM distributions WHERE id = ANY($1::uuid[])',
      [ids],
    );
    return rows.map((r) => ({ id: r.id, state: r.state, errorCode: r.error_code }));
  }
}
