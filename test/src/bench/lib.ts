/**
 * Small measurement toolkit for the benchmark: rate loops, busy-time
 * tracking, percentiles, deadlines, memory readings and the result model
 * that main.ts turns into JSON and markdown.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export const now = (): number => performance.now();

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function say(line: string): void {
  process.stdout.write(`[bench] ${line}\n`);
}

/** Result of a bounded rate measurement. */
export interface RateResult {
  ops: number;
  ms: number;
  /** Operations per second. */
  rate: number;
  concurrency: number;
}

/**
 * Runs `op` from `concurrency` callers until `maxOps` operations completed or
 * `maxMs` elapsed, whichever comes first; `warmupOps` run before the clock starts.
 */
export async function measureRate(opts: { concurrency: number; maxOps: number; maxMs: number; warmupOps?: number }, op: (i: number) => Promise<unknown>): Promise<RateResult> {
  const warm = opts.warmupOps ?? 0;
  for (let i = 0; i < warm; i++) await op(-1 - i);
  let started = 0;
  let done = 0;
  const t0 = now();
  const deadline = t0 + opts.maxMs;
  const worker = async (): Promise<void> => {
    while (started < opts.maxOps && now() < deadline) {
      const i = started++;
      await op(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const ms = now() - t0;
  return { ops: done, ms, rate: (done * 1000) / ms, concurrency: opts.concurrency };
}

/** The project's bounded-concurrency map, under the name the stages use. */
export { mapConcurrent as mapPool } from '@keyhub/shared';

/**
 * Wall time during which at least one tracked call was in flight (the union
 * of the call intervals), plus call counts: "how long was the HSM busy".
 */
export class BusyTracker {
  private inFlight = 0;
  private since = 0;
  busyMs = 0;
  calls = 0;
  /** Most calls in flight at once since the last reset. */
  maxInFlight = 0;
  /** Sum of the durations of tracked calls: callMs / busyMs is the mean number in flight while busy. */
  callMs = 0;
  enabled = true;

  enter(): void {
    if (!this.enabled) return;
    this.calls++;
    if (this.inFlight++ === 0) this.since = now();
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
  }

  exit(): void {
    if (!this.enabled) return;
    if (--this.inFlight === 0) this.busyMs += now() - this.since;
  }

  reset(): void {
    this.busyMs = 0;
    this.calls = 0;
    this.callMs = 0;
    this.maxInFlight = this.inFlight;
    if (this.inFlight > 0) this.since = now();
  }

  snapshot(): { busyMs: number; calls: number; maxInFlight: number; callMs: number } {
    const open = this.inFlight > 0 ? now() - this.since : 0;
    return { busyMs: this.busyMs + open, calls: this.calls, maxInFlight: this.maxInFlight, callMs: this.callMs };
  }

  /** Wraps a promise-returning call. */
  track<T>(p: () => Promise<T>): Promise<T> {
    this.enter();
    const started = now();
    const done = (): void => {
      if (this.enabled) this.callMs += now() - started;
      this.exit();
    };
    let result: Promise<T>;
    try {
      result = p();
    } catch (err) {
      done();
      throw err;
    }
    return result.finally(done);
  }
}

/**
 * A Proxy that times every method call of an object returning a promise (the
 * Hsm port): counted per method name and as busy time of `tracker`.
 */
export function instrument<T extends object>(target: T, tracker: BusyTracker, perMethod?: Map<string, number>): T {
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t) as unknown;
      if (typeof value !== 'function' || prop === 'constructor') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        if (perMethod && typeof prop === 'string') perMethod.set(prop, (perMethod.get(prop) ?? 0) + 1);
        return tracker.track(async () => fn.apply(t, args));
      };
    },
  });
}

/** Nearest-rank percentile of an unsorted sample. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export class TimeoutError extends Error {}

/** Rejects when `ms` elapse first; the work itself is not cancelled (cleanup has to end it). */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what}: no result within ${Math.round(ms / 1000)} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every `everyMs` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function pollUntil<T>(what: string, timeoutMs: number, everyMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (now() > deadline) throw new TimeoutError(`${what}: not reached within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(everyMs);
  }
}

/** VmRSS / VmHWM of a process in MB, from /proc (Linux). */
export function procMemoryMb(pid: number | 'self'): { rssMb: number | null; hwmMb: number | null } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): number | null => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) / 1024 : null;
    };
    return { rssMb: field('VmRSS'), hwmMb: field('VmHWM') };
  } catch {
    return { rssMb: null, hwmMb: null };
  }
}

export const mb = (bytes: number): number => bytes / (1024 * 1024);

/**
 * CPU time (user + system, ms) used so far by the processes of this machine,
 * grouped: this process (Node and the SoftHSM threads), all PostgreSQL
 * processes, and all nats-server processes. Differences of two readings say
 * where a run's CPU went; on two cores they add up to at most 2x wall time.
 */
export function cpuByComponent(): Record<'node' | 'nodeMain' | 'postgres' | 'nats', number> {
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  const out = { node: 0, nodeMain: 0, postgres: 0, nats: 0 };
  const self = process.cpuUsage();
  out.node = (self.user + self.system) / 1000;
  try {
    // The main (JavaScript) thread alone; the rest of `node` is SoftHSM's work on the libuv pool and V8's helpers.
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    out.nodeMain = (Number(fields[11]) + Number(fields[12])) * tick;
  } catch {
    out.nodeMain = Number.NaN;
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // utime + stime, plus the children's it reaped (cutime + cstime): a PostgreSQL backend that
      // exits during a run moves its CPU time to the postmaster instead of out of the sum.
      const ms = (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * tick;
      if (comm === 'postgres') out.postgres += ms;
      else if (comm === 'nats-server') out.nats += ms;
    } catch {
      // The process ended between readdir and read.
    }
  }
  return out;
}

export function round(v: number | null | undefined, digits = 1): number | null {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

// ------------------------------------------------------------ result model ---

export interface Goal {
  /** Human-readable target, e.g. ">= 3000 packages/s". */
  text: string;
  pass: boolean | null;
}

export interface Metric {
  key: string;
  label: string;
  value: number | string | null;
  unit: string;
  note?: string;
  goal?: Goal;
}

export interface StageResult {
  stage: string;
  status: 'ok' | 'failed' | 'timeout';
  error?: string;
  startedAt: string;
  durationMs: number;
  metrics: Metric[];
  /** Raw figures behind the metrics (timings, counts, configuration). */
  details: Record<string, unknown>;
}

/** Collects metrics for one stage; every figure is stored as measured, goals are checked here. */
export class StageRecorder {
  readonly metrics: Metric[] = [];
  readonly details: Record<string, unknown> = {};

  constructor(readonly stage: string) {}

  metric(key: string, label: string, value: number | string | null, unit: string, extra: { note?: string; digits?: number } = {}): Metric {
    const v = typeof value === 'number' ? round(value, extra.digits ?? 1) : value;
    const m: Metric = { key, label, value: v, unit, ...(extra.note ? { note: extra.note } : {}) };
    this.metrics.push(m);
    return m;
  }

  /** A metric with a goal: pass when `value` compares to `target` as `op` says (null value: not evaluated). */
  goal(key: string, label: string, value: number | null, unit: string, op: '>=' | '<=' | '<', target: number, extra: { note?: string; digits?: number; targetText?: string } = {}): Metric {
    const m = this.metric(key, label, value, unit, extra);
    const pass = value === null || !Number.isFinite(value) ? null : op === '>=' ? value >= target : op === '<=' ? value <= target : value < target;
    m.goal = { text: extra.targetText ?? `${op} ${target}${unit && unit !== 'x' ? ` ${unit}` : ''}`, pass };
    return m;
  }

  find(key: string): Metric | undefined {
    return this.metrics.find((m) => m.key === key);
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (cause: ${err.cause.message})` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

/** Runs cleanups in reverse order, collecting (not throwing) failures. */
export class Cleanup {
  private readonly fns: Array<{ what: string; fn: () => Promise<unknown> | unknown }> = [];
  readonly failures: string[] = [];

  add(what: string, fn: () => Promise<unknown> | unknown): void {
    this.fns.push({ what, fn });
  }

  async run(): Promise<void> {
    while (this.fns.length) {
      const { what, fn } = this.fns.pop()!;
      try {
        await withDeadline(Promise.resolve().then(fn), 30_000, `cleanup ${what}`);
      } catch (err) {
        this.failures.push(`${what}: ${describeError(err)}`);
      }
    }
  }
}
