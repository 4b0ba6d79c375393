import type { DataSource } from 'typeorm';
import { markListenersSeen } from '../../store/queries/listeners';

/**
 * Records that listeners were heard from (verified heartbeats gathered since
 * the last call). Rule: only a verified heartbeat counts; a listener's
 * last-seen time decides whether it is online for re-sends.
 */
export class RecordHeartbeats {
  constructor(private readonly ds: DataSource) {}

  async execute(listenerIds: string[]): Promise<void> {
    if (listenerIds.length === 0) return;
    await markListenersSeen(this.ds, listenerIds);
  }
}
