import type { Logger } from '@keyhub/shared';
import type { WriteCheckpoint } from '../../operations/audit/write-checkpoint';
import type { Job } from '../scheduler';
import { untimed, type TimeJob } from './timing';

/** Signs the audit chain's head (WriteCheckpoint) every `audit.checkpointEverySeconds`. */
export class CheckpointJob implements Job {
  readonly name = 'checkpoint';
  readonly intervalMs: number;

  constructor(
    private readonly writeCheckpoint: WriteCheckpoint,
    everySeconds: number,
    private readonly logger: Logger,
    private readonly time: TimeJob = untimed,
  ) {
    this.intervalMs = everySeconds * 1000;
  }

  async run(): Promise<void> {
    const cp = await this.time(this.name, () => this.writeCheckpoint.execute());
    if (cp) this.logger.info({ seq: cp.seq }, 'audit checkpoint signed');
  }
}
