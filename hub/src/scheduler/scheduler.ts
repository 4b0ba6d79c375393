import type { Logger } from '@keyhub/shared';
import { errorSummary } from '../bus/hub-bus';

/** A periodic job: an adapter that calls one operation. */
export interface Job {
  /** Names the job in logs and metrics. */
  readonly name: string;
  readonly intervalMs: number;
  run(): Promise<void>;
}

/**
 * Runs jobs every `intervalMs`, never two runs of one job at once (a run
 * that outlasts its interval skips the ticks it covers). A failed run is
 * logged, counted and retried at the next tick.
 */
export class Scheduler {
  private timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly logger: Logger,
    private readonly onFailure?: (job: string) => void,
  ) {}

  add(job: Job): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      const run = job
        .run()
        .catch((err: unknown) => {
          this.onFailure?.(job.name);
          this.logger.warn({ task: job.name, err: errorSummary(err) }, 'periodic task failed; will retry');
        })
        .finally(() => {
          busy = false;
          this.inFlight.delete(run);
        });
      this.inFlight.add(run);
    }, job.intervalMs);
    this.timers.push(t);
  }

  /** Stops the timers, then waits for runs under way, so that they commit before the database closes under them. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await Promise.all([...this.inFlight]);
  }
}
