import type { Parameters as FcParameters } from 'fast-check';

/**
 * How long the fuzz targets run (README.md in this folder).
 * - CI default: each target's own `numRuns`, tuned so that the whole folder
 *   takes about a minute on a 2-core machine.
 * - `KEYHUB_FUZZ_RUNS=<n>`: every property makes n runs.
 * - `KEYHUB_FUZZ_LONG=1`: every property runs `KEYHUB_FUZZ_MINUTES` minutes
 *   (default 60), as many runs as fit.
 * - `KEYHUB_FUZZ_SEED=<n>` (with the `path` fast-check prints) replays a failure.
 * - `KEYHUB_FUZZ_SHRINK=1` shrinks a failure (off by default: a run against
 *   the token and the database is slow to shrink, and the printed counterexample
 *   is already the list of recipes that broke it).
 */
const env = process.env;

function positive(name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name}=${raw}: expected a positive integer`);
  return n;
}

export const FUZZ_LONG = env.KEYHUB_FUZZ_LONG === '1' || env.KEYHUB_FUZZ_LONG === 'true';
const fixedRuns = positive('KEYHUB_FUZZ_RUNS');
const minutes = env.KEYHUB_FUZZ_MINUTES ? Number(env.KEYHUB_FUZZ_MINUTES) : 60;
if (!(minutes > 0 && Number.isFinite(minutes))) throw new Error(`KEYHUB_FUZZ_MINUTES=${env.KEYHUB_FUZZ_MINUTES}: expected a positive number of minutes`);
const seed = env.KEYHUB_FUZZ_SEED !== undefined && env.KEYHUB_FUZZ_SEED !== '' ? Number(env.KEYHUB_FUZZ_SEED) : undefined;
const path = env.KEYHUB_FUZZ_PATH || undefined;

/** True when the default CI budget applies (the 10,000-message floor is checked only then). */
export const FUZZ_DEFAULT_BUDGET = !FUZZ_LONG && fixedRuns === undefined;

/** fast-check parameters for one property whose CI default is `ciRuns` runs. */
export function fuzzParams<T>(ciRuns: number): FcParameters<T> {
  const base: FcParameters<T> = { endOnFailure: env.KEYHUB_FUZZ_SHRINK !== '1', ...(seed !== undefined ? { seed } : {}), ...(path ? { path } : {}) };
  if (FUZZ_LONG) return { ...base, numRuns: fixedRuns ?? Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: minutes * 60_000, markInterruptAsFailure: false };
  return { ...base, numRuns: fixedRuns ?? ciRuns };
}

/** Mocha timeout of a fuzz test: generous in CI, none in long mode. */
export function fuzzTimeout(ciMs: number): number {
  if (FUZZ_LONG) return 0;
  if (fixedRuns !== undefined) return 0;
  return ciMs;
}
