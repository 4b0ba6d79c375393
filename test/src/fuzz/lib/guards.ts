import { strict as assert } from 'node:assert';
import { ERROR_CODES, type ErrorCode } from '@keyhub/protocol';

/**
 * Process-level watch for the fuzz targets: every unhandled rejection and
 * uncaught exception while a target runs is recorded and fails it, and
 * Object.prototype (and friends) must come out exactly as they went in.
 */
export class ProcessGuard {
  private readonly problems: string[] = [];
  private readonly onRejection = (reason: unknown): void => void this.problems.push(`unhandledRejection: ${describe(reason)}`);
  private readonly onException = (err: unknown): void => void this.problems.push(`uncaughtException: ${describe(err)}`);
  private readonly prototypes = snapshotPrototypes();

  install(): this {
    process.on('unhandledRejection', this.onRejection);
    process.on('uncaughtException', this.onException);
    return this;
  }

  uninstall(): void {
    process.off('unhandledRejection', this.onRejection);
    process.off('uncaughtException', this.onException);
  }

  /** Fails on anything recorded so far, and on a changed built-in prototype. */
  check(context: string): void {
    assert.deepEqual(this.problems, [], `${context}: no unhandled rejection, no uncaught exception`);
    const now = snapshotPrototypes();
    assert.deepEqual(now, this.prototypes, `${context}: built-in prototypes unchanged (no prototype pollution)`);
    const probe = {} as Record<string, unknown>;
    for (const k of ['polluted', 'isAdmin', 'type', 'listenerId', 'outcome', 'seq']) assert.equal(probe[k], undefined, `${context}: ({}).${k} is undefined`);
  }
}

function snapshotPrototypes(): Record<string, string[]> {
  const of = (o: object): string[] => Reflect.ownKeys(o).map(String).sort();
  return { object: of(Object.prototype), array: of(Array.prototype), function: of(Function.prototype), string: of(String.prototype) };
}

function describe(v: unknown): string {
  return v instanceof Error ? `${v.name}: ${v.message}\n${v.stack ?? ''}` : String(v);
}

/** A code from the protocol's table (protocol/src/errors.ts). */
export function assertStableCode(code: unknown, context: string): asserts code is ErrorCode {
  assert.ok(typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, code), `${context}: ${String(code)} is a code of ERROR_CODES`);
}

/** Messages thrown at each target in this process, by outcome, for the per-file lines and the 10,000 floor (total.test.ts). */
export interface TargetStats {
  messages: number;
  runs: number;
  ms: number;
  outcomes: Map<string, number>;
}
export const FUZZ_STATS = new Map<string, TargetStats>();

function statsOf(target: string): TargetStats {
  let s = FUZZ_STATS.get(target);
  if (!s) FUZZ_STATS.set(target, (s = { messages: 0, runs: 0, ms: 0, outcomes: new Map() }));
  return s;
}

/** One message thrown at `target`, and what became of it (a code, or what was done). */
export function countMessage(target: string, outcome: string): void {
  const s = statsOf(target);
  s.messages++;
  s.outcomes.set(outcome, (s.outcomes.get(outcome) ?? 0) + 1);
}

export function countRuns(target: string, runs: number, ms: number): void {
  const s = statsOf(target);
  s.runs += runs;
  s.ms += ms;
}

export function reportStats(target: string): void {
  const s = FUZZ_STATS.get(target);
  if (!s) return;
  const outcomes = [...s.outcomes]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  process.stderr.write(`      fuzz ${target}: ${s.messages} messages in ${s.runs} runs, ${(s.ms / 1000).toFixed(1)} s (${outcomes})\n`);
}
