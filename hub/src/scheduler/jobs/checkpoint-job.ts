import { KeyhubError, type Logger } from '@keyhub/shared';
import type { WriteCheckpoint } from '../../operations/audit/write-checkpoint';
import type { Job } from '../scheduler';
import { untimed, type TimeJob } from './timing';

/**
 * Signs the audit chain's head (WriteCheckpoint) every
 * `audit.checkpointEverySeconds` and sends it to the listeners. That
 * interval bounds the window no site has witnessed yet, so it is short.
 * A broken chain is an error, not a retryable hiccup: logged at error level
 * with its event, every tick until someone restores the history.
 */
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
    try {
      const cp = await this.time(this.name, () => this.writeCheckpoint.execute());
      if (cp) this.logger.info({ seq: cp.seq, prevSeq: cp.prevSeq }, 'audit checkpoint signed');
    } catch (err) {
      if (!KeyhubError.is(err, 'AUDIT_CHAIN_BROKEN')) throw err;
      this.logger.error({ code: err.code, seq: err.details?.seq, reason: err.details?.reason }, 'audit checkpoint refused: the chain since the last checkpoint does not verify');
    }
  }
}
