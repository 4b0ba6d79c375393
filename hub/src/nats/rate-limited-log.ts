import type { Logger } from '@keyhub/shared';

/**
 * A warning that input floods cannot turn into a log flood: at most one line
 * per window, carrying how many were suppressed since the last one.
 */
export class RateLimitedLog {
  private last = 0;
  private suppressed = 0;

  constructor(
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(logger: Pick<Logger, 'warn'>, fields: Record<string, unknown>, message: string): void {
    const t = this.now();
    if (t - this.last < this.windowMs) {
      this.suppressed++;
      return;
    }
    logger.warn({ ...fields, suppressed: this.suppressed }, message);
    this.last = t;
    this.suppressed = 0;
  }
}
