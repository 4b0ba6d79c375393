import type { DataSource } from 'typeorm';
import type { HeartbeatSeen } from '../../domain/liveness';
import { markListenersSeen } from '../../store/queries/listeners';

/**
 * Records that listeners were heard from (verified, fresh heartbeats gathered
 * since the last call). Rules (domain/liveness.ts): only a verified heartbeat
 * counts, and only one whose sequence is greater than the last one stored
 * for its listener, so a replay keeps no dead site online; a listener's
 * last-seen time decides whether it is online for re-sends. Returns the
 * listeners whose last-seen time moved.
 */
export class RecordHeartbeats {
  constructor(private readonly ds: DataSource) {}

  async execute(seen: HeartbeatSeen[]): Promise<string[]> {
    if (seen.length === 0) return [];
    return markListenersSeen(this.ds, seen);
  }
}
