import { injectable } from 'tsyringe';
import { HubContext } from '../../context';
import { markStreamCleaned, streamCleanupsDue } from '../../store/queries/site-lifecycle';

/** The stream clean-ups that compromises and decommissions left due (SiteLifecycleJob carries them out on the bus). */
@injectable()
export class SiteStreamCleanups {
  constructor(private readonly ctx: HubContext) {}

  due(): Promise<Array<{ id: string; listener_id: string; stream_cleanup: 'packages' | 'all' }>> {
    return streamCleanupsDue(this.ctx.ds);
  }

  /** Marked done only if it was not widened meanwhile (a decommission finished while its packages were purged). */
  done(id: string, what: 'packages' | 'all'): Promise<void> {
    return markStreamCleaned(this.ctx.ds, id, what);
  }
}
