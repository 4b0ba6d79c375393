import type { Logger } from '@keyhub/shared';
import type { RunKeySchedule } from '../../operations/keys/run-key-schedule';
import type { Job } from '../scheduler';
import { untimed, type TimeJob } from './timing';

/**
 * Runs the key lifecycle's scheduled transitions (RunKeySchedule) every
 * `keyLifecycle.intervalMs`: that interval bounds how late an activation,
 * a deactivation or a rotation can happen. Safe in every replica at once.
 */
export class KeyLifecycleJob implements Job {
  readonly name = 'key_lifecycle';

  constructor(
    private readonly schedule: RunKeySchedule,
    readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly time: TimeJob = untimed,
  ) {}

  async run(): Promise<void> {
    const r = await this.time(this.name, () => this.schedule.execute());
    if (r.activated || r.deactivated || r.rotated) this.logger.info(r, 'scheduled key transitions done');
  }
}
