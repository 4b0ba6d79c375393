import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { distributionProgress } from '../../store/queries/progress';
import { resolveDestinations, resolveKeys } from './distribute-selection';

/** How far the distributions of some key versions to some destinations have got: what `distribute --wait` polls. */
@injectable()
export class FollowProgress {
  constructor(private readonly ctx: HubContext) {}

  async execute(body: api.ProgressBody): Promise<api.ProgressResult> {
    const m = this.ctx.ds.manager;
    const selected = await resolveKeys(m, body.keys);
    const pairs = body.to === 'all' ? null : await resolveDestinations(m, body.to);
    const p = await distributionProgress(
      m,
      selected.map((s) => s.version.id),
      pairs,
    );
    return {
      total: p.total,
      confirmed: p.confirmed,
      failed: p.failed,
      pending: p.total - p.confirmed - p.failed,
      failures: p.failures.map((f) => ({ key: f.key, version: Number(f.version), listenerId: f.listener_id, target: f.target, errorCode: f.error_code ?? 'INTERNAL' })),
    };
  }
}
