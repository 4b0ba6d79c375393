import type { Logger } from '@keyhub/shared';
import { resendPollMs } from '../../domain/resend-backoff';
import type { ResendDue } from '../../operations/distributions/resend-due';
import type { Job } from '../scheduler';
import { untimed, type TimeJob } from './timing';

/** Re-sends what was sent but not confirmed in time (ResendDue), to listeners with nothing left in their consumer. */
export class ResendJob implements Job {
  readonly name = 'resend';
  readonly intervalMs: number;

  constructor(
    private readonly resendDue: ResendDue,
    private readonly withBacklog: (listenerIds: string[]) => Promise<Set<string>>,
    resendAfterSeconds: number,
    private readonly logger: Logger,
    private readonly onHandled?: (r: { reissued: number; failed: number }) => void,
    private readonly time: TimeJob = untimed,
  ) {
    this.intervalMs = resendPollMs(resendAfterSeconds);
  }

  async run(): Promise<void> {
    const r = await this.time(this.name, () => this.resendDue.execute(this.withBacklog));
    this.onHandled?.(r);
    if (r.reissued || r.failed) this.logger.info(r, 'unconfirmed packages handled');
  }
}
