import type { HeartbeatSeen } from '../../domain/liveness';
import type { RecordHeartbeats } from '../../operations/listeners/record-heartbeats';
import type { Job } from '../scheduler';
import { untimed, type TimeJob } from './timing';

/** Writes the listeners heard from (gathered by the heartbeat handler) in one statement every two seconds. */
export class HeartbeatFlushJob implements Job {
  readonly name = 'heartbeat_flush';
  readonly intervalMs = 2_000;

  constructor(
    private readonly takeSeen: () => HeartbeatSeen[],
    private readonly recordHeartbeats: RecordHeartbeats,
    private readonly time: TimeJob = untimed,
  ) {}

  async run(): Promise<void> {
    const ids = this.takeSeen();
    if (ids.length === 0) return;
    await this.time(this.name, () => this.recordHeartbeats.execute(ids));
  }
}
