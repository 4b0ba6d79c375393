/**
 * A fixed set of sessions handed out one per in-flight operation: PKCS#11
 * sessions are not safe for concurrent calls (SoftHSM fails the second one
 * with CKR_GENERAL_ERROR), but separate sessions run in parallel.
 */
export class SessionPool<S> {
  private readonly free: S[];
  private readonly waiters: Array<(s: S) => void> = [];
  private readonly all: S[];

  constructor(sessions: S[]) {
    this.all = [...sessions];
    this.free = [...sessions];
  }

  get size(): number {
    return this.all.length;
  }

  async use<T>(fn: (session: S) => Promise<T>): Promise<T> {
    const session = this.free.pop() ?? (await new Promise<S>((resolve) => this.waiters.push(resolve)));
    try {
      return await fn(session);
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.free.push(session);
    }
  }

  /** Waits until every session is idle, then hands them all back for closing. */
  async drain(): Promise<S[]> {
    while (this.free.length < this.all.length) {
      await new Promise<S>((resolve) => this.waiters.push(resolve)).then((s) => this.free.push(s));
    }
    return this.all;
  }
}
