/**
 * `npm run bench`: Keyhub's benchmark. Not a test: it measures, on this
 * machine and in this run, the bare HSM/NATS limits and what the product
 * achieves next to them, and writes
 *   bench-results/bench-<timestamp>.json, bench-results/latest.json,
 *   bench-results/latest.md (the summary table, also printed at the end).
 *
 * Usage: node test/dist/bench/main.js [bare] [fanout] [api] [e2e] [scale] [lifecycle] [compromise] [dashboard] [targets]
 * (no argument: all nine). fanout, e2e and lifecycle compare against limits from bare,
 * so bare runs first whenever one of them is selected.
 * Every stage is bounded in time and count and removes what it started
 * (servers, tokens, databases, temp dirs), also when it fails.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { runApi } from './api';
import { runBare } from './bare';
import type { BenchContext, StageRun } from './context';
import { runE2e } from './e2e';
import { runFanout } from './fanout';
import { runCompromiseE2e } from './compromise-e2e';
import { runDashboard } from './dashboard';
import { runLifecycle } from './lifecycle';
import { Cleanup, describeError, now, say, StageRecorder, TimeoutError, withDeadline, type StageResult } from './lib';
import { renderMarkdown, type BenchReport } from './report';
import { runScale } from './scale';
import { runTargets } from './targets';

const REPO = path.resolve(__dirname, '../../..');
const RESULTS_DIR = path.join(REPO, 'bench-results');

interface StageDef {
  name: string;
  title: string;
  budgetMs: number;
  run: (s: StageRun) => Promise<void>;
}

const STAGES: StageDef[] = [
  { name: 'bare', title: 'bare HSM / JetStream / target-token limits', budgetMs: 120_000, run: runBare },
  { name: 'fanout', title: 'hub fan-out in process (Distribute + OutboxRelay), auth+TLS and plain NATS', budgetMs: 240_000, run: runFanout },
  { name: 'api', title: 'distribution through the HTTPS API next to the in-process call', budgetMs: 240_000, run: runApi },
  { name: 'e2e', title: 'end to end with 4 real listeners, auth+TLS and plain NATS', budgetMs: 600_000, run: runE2e },
  { name: 'scale', title: 'queries on 100,000 key versions and 1,000 listeners', budgetMs: 150_000, run: runScale },
  { name: 'lifecycle', title: 'compromise at 1,000 sites, rotation of 1,000 keys x 10 sites, drift scan of 1,000 x 100', budgetMs: 360_000, run: runLifecycle },
  { name: 'dashboard', title: 'dashboard pages and reports on 1,000 sites and 100,000 key versions, TTFB and in Chromium', budgetMs: 300_000, run: runDashboard },
  { name: 'compromise', title: 'compromise with 4 real listeners, each behind a 1,000-package backlog', budgetMs: 420_000, run: runCompromiseE2e },
  { name: 'targets', title: 'catch-up of 1,000 keys into a PKCS#12 keystore and the AWS KMS stand-in, next to the bare writer and SDK', budgetMs: 300_000, run: runTargets },
];

function selectStages(argv: string[]): { stages: StageDef[]; notes: string[] } {
  const notes: string[] = [];
  const unknown = argv.filter((a) => !STAGES.some((s) => s.name === a));
  if (unknown.length) {
    process.stderr.write(`unknown stage(s): ${unknown.join(', ')}; choose from ${STAGES.map((s) => s.name).join(', ')}\n`);
    process.exit(2);
  }
  const wanted = new Set(argv.length ? argv : STAGES.map((s) => s.name));
  if (!wanted.has('bare') && (wanted.has('fanout') || wanted.has('e2e') || wanted.has('lifecycle'))) {
    wanted.add('bare');
    notes.push('bare was added: fanout, e2e and lifecycle report ratios against limits measured in the same run');
  }
  return { stages: STAGES.filter((s) => wanted.has(s.name)), notes };
}

async function runStage(def: StageDef, ctx: BenchContext): Promise<StageResult> {
  const rec = new StageRecorder(def.name);
  const cleanup = new Cleanup();
  const startedAt = new Date().toISOString();
  const t0 = now();
  const loadStart = os.loadavg();
  say(`stage ${def.name}: ${def.title} (bounded at ${def.budgetMs / 1000} s)`);
  let status: StageResult['status'] = 'ok';
  let error: string | undefined;
  try {
    await withDeadline(def.run({ rec, cleanup, ctx }), def.budgetMs, `stage ${def.name}`);
  } catch (err) {
    status = err instanceof TimeoutError ? 'timeout' : 'failed';
    error = describeError(err);
    say(`stage ${def.name} ${status}: ${error}`);
    if (process.env.KEYHUB_BENCH_DEBUG === '1' && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  } finally {
    await cleanup.run();
    if (cleanup.failures.length) {
      rec.details.cleanupFailures = cleanup.failures;
      say(`stage ${def.name}: cleanup problems: ${cleanup.failures.join('; ')}`);
    }
  }
  const durationMs = now() - t0;
  // Other work on the machine skews every figure; the load average says how much there was.
  rec.details.loadavg = { atStart: loadStart, atEnd: os.loadavg() };
  say(`stage ${def.name}: ${status} in ${(durationMs / 1000).toFixed(1)} s (load average ${os.loadavg()[0].toFixed(2)})`);
  return { stage: def.name, status, ...(error ? { error } : {}), startedAt, durationMs, metrics: rec.metrics, details: rec.details };
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadavgAtStart: os.loadavg(),
  };
}

async function main(): Promise<void> {
  const { stages, notes } = selectStages(process.argv.slice(2));
  for (const n of notes) say(n);
  const startedAt = new Date();
  const t0 = now();
  const ctx: BenchContext = { limits: {}, rss: {} };
  const results: StageResult[] = [];
  for (const def of stages) results.push(await runStage(def, ctx));

  const goals = results.flatMap((r) =>
    r.metrics.filter((m) => m.goal).map((m) => ({ stage: r.stage, key: m.key, label: m.label, value: m.value, unit: m.unit, target: m.goal!.text, pass: m.goal!.pass })),
  );
  const report: BenchReport = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durationMs: now() - t0,
    machine: machine(),
    argv: process.argv.slice(2),
    notes,
    limits: ctx.limits,
    rssMb: ctx.rss,
    goals,
    stages: results,
  };
  const markdown = renderMarkdown(report);
  await mkdir(RESULTS_DIR, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const json = `${JSON.stringify(report, null, 2)}\n`;
  await writeFile(path.join(RESULTS_DIR, `bench-${stamp}.json`), json);
  await writeFile(path.join(RESULTS_DIR, 'latest.json'), json);
  await writeFile(path.join(RESULTS_DIR, 'latest.md'), markdown);
  process.stdout.write(`\n${markdown}\n`);
  say(`results: ${path.relative(process.cwd(), path.join(RESULTS_DIR, `bench-${stamp}.json`))}, bench-results/latest.json, bench-results/latest.md`);
  // A stage that failed or ran out of time makes the run fail; unmet goals are results, reported above.
  process.exit(results.every((r) => r.status === 'ok') ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${describeError(err)}\n`);
  process.exit(1);
});
