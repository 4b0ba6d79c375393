/**
 * Failed authentications per client address in a fixed window. The API's
 * rate limit counts per credential once a request is authenticated; a flood
 * of made-up tokens has no credential to count against, so past the limit
 * an address's failures are answered 429 instead of 401 (slowing any
 * guessing), while a valid credential from the same address is still served.
 */
export class FailedAuthThrottle {
  private readonly windows = new Map<string, { failures: number; resetAt: number }>();

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  blocked(address: string): boolean {
    const w = this.windows.get(address);
    if (!w) return false;
    if (w.resetAt <= this.now()) {
      this.windows.delete(address);
      return false;
    }
    return w.failures >= this.maxFailures;
  }

  recordFailure(address: string): void {
    const t = this.now();
    const w = this.windows.get(address);
    if (!w || w.resetAt <= t) this.windows.set(address, { failures: 1, resetAt: t + this.windowMs });
    else w.failures++;
    // Bounded memory under a flood from many addresses: expired windows go first, then the oldest.
    if (this.windows.size > 10_000) {
      for (const [k, v] of this.windows) if (v.resetAt <= t || this.windows.size > 10_000) this.windows.delete(k);
    }
  }
}
