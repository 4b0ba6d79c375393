import type { Logger } from '@keyhub/shared';
import type { FinishDecommission } from '../../operations/listeners/finish-decommission';
import type { SiteStreamCleanups } from '../../operations/listeners/site-stream-cleanups';
import type { Job } from '../scheduler';

/**
 * Site lifecycle on a timer: finishes decommissions that are due (every
 * destroy answered, or the deadline passed), then removes from the DOWN
 * stream what compromises and decommissions left there. Every replica runs
 * it: decommissions are claimed with SKIP LOCKED, clean-ups are idempotent.
 */
export class SiteLifecycleJob implements Job {
  readonly name = 'site-lifecycle';

  constructor(
    private readonly finish: FinishDecommission,
    private readonly cleanups: SiteStreamCleanups,
    /** HubBus.cleanSiteStream: the bus's own JetStream manager, not a new one per run. */
    private readonly cleanSiteStream: (listenerId: string, what: 'packages' | 'all') => Promise<number>,
    private readonly logger: Logger,
    readonly intervalMs = 1000,
  ) {}

  async run(): Promise<void> {
    const finished = await this.finish.runDue();
    if (finished) this.logger.info({ finished }, 'decommissions finished');
    const due = await this.cleanups.due();
    if (!due.length) return;
    for (const c of due) {
      const purged = await this.cleanSiteStream(c.listener_id, c.stream_cleanup);
      await this.cleanups.done(c.id, c.stream_cleanup);
      this.logger.info({ listenerId: c.listener_id, what: c.stream_cleanup, purged }, 'site messages removed from the DOWN stream');
    }
  }
}
