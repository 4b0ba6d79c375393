import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The sequence numbers of this listener's heartbeats: strictly increasing,
 * also across restarts, because the hub refuses a heartbeat whose sequence
 * is not above the last one it accepted (so a captured heartbeat cannot be
 * replayed). Each number is at least the current time in milliseconds, so a
 * lost state file costs nothing on a machine whose clock is right, and the
 * last number is kept in the home, so a clock stepped back does not reuse
 * one.
 */
export class HeartbeatSequence {
  private last: number;

  private constructor(private readonly path: string) {
    let last = 0;
    if (existsSync(path)) {
      const n = Number(readFileSync(path, 'utf8').trim());
      if (Number.isSafeInteger(n) && n > 0) last = n;
    }
    this.last = last;
  }

  static open(home: string): HeartbeatSequence {
    return new HeartbeatSequence(join(home, 'heartbeat.seq'));
  }

  next(nowMs: number = Date.now()): number {
    const n = Math.max(this.last + 1, Math.floor(nowMs));
    this.last = n;
    writeFileSync(`${this.path}.tmp`, `${n}\n`, { mode: 0o600 });
    renameSync(`${this.path}.tmp`, this.path);
    return n;
  }
}
