import type { Logger } from '@keyhub/shared';
import { resendPollMs } from '../../domain/resend-backoff';
import type { ResendCommands } from '../../operations/commands/resend-commands';
import type { Job } from '../scheduler';
import { untimed, type TimeJob } from './timing';

/** Re-sends lifecycle commands that no site answered in time (ResendCommands). */
export class CommandResendJob implements Job {
  readonly name = 'command-resend';
  readonly intervalMs: number;

  constructor(
    private readonly resend: ResendCommands,
    private readonly withBacklog: (listenerIds: string[]) => Promise<Set<string>>,
    resendAfterSeconds: number,
    private readonly logger: Logger,
    private readonly time: TimeJob = untimed,
  ) {
    this.intervalMs = resendPollMs(resendAfterSeconds);
  }

  async run(): Promise<void> {
    const r = await this.time(this.name, () => this.resend.execute(this.withBacklog));
    if (r.resent) this.logger.info(r, 'unanswered key commands re-sent');
  }
}
