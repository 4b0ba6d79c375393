/**
 * Stage "e2e": real deployments from the test harness — `keyhub serve` and
 * four `keyhub-listener run` processes, each listener importing into its own
 * SoftHSM token — driven from an in-process hub runtime of the bench (same
 * database and hub token as the serve process). Measures confirmed
 * deliveries/s, latency at light load and a listener's catch-up rate.
 *
 * Two deployments run side by side for the whole stage: one with the
 * project's NATS auth and TLS (what production runs: user JWTs signed by the
 * hub, TLS from the hub CA) and one on a plain nats-server (`plainNats`).
 * Each run of a measurement is made on both, back to back, the order swapped
 * from one pair to the next (throughput three times each, the median
 * counting; latency twice each, the calls pooled; catch-up once each), so
 * the cost of TLS and JWT auth is measured in the same run. The other
 * deployment idles meanwhile (heartbeats, pulls, the hub's timers). The bench's runtime is opened on the measured
 * deployment's hub token for each measurement (SoftHSM reads its
 * configuration when the module is initialized).
 */
import { readFile } from 'node:fs/promises';
import { createLogger, Pkcs11Hsm } from '@keyhub/shared';
import { hubConfigSchema } from '@keyhub/hub/dist/config';
import { openHubRuntime, type HubRuntime } from '@keyhub/hub/dist/container';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { Distribute, type Destination, type DistributeResult } from '@keyhub/hub/dist/operations/distributions/distribute';
import type { SoftHsmToken } from '../env';
import { Deployment, type ManagedProcess } from '../harness/deployment';
import type { StageRun } from './context';
import { mapPool, measureRate, median, percentile, pollUntil, procMemoryMb, say, sleep, type RateResult, type StageRecorder } from './lib';
import { useSoftHsm } from './softhsm-env';

const SITES = ['site-1', 'site-2', 'site-3', 'site-4'];
const THROUGHPUT_KEYS = 200;
const LATENCY_CALLS = 100;
const LATENCY_INTERVAL_MS = 100;
const CATCHUP_PACKAGES = 1000;
const BENCH_PIN_ENV = 'KEYHUB_BENCH_E2E_HUB_PIN';
const REF_PIN_ENV = 'KEYHUB_BENCH_E2E_REF_PIN';
const SITE_PIN_ENV = 'KEYHUB_BENCH_E2E_SITE_PIN';
const CATCHUP_SITE = SITES[SITES.length - 1];
/** Throughput runs per mode (the median counts) and latency runs per mode (their calls pooled). */
const THROUGHPUT_ROUNDS = 3;
const LATENCY_ROUNDS = 2;

type Mode = 'auth' | 'plain';
const MODE_TEXT: Record<Mode, string> = { auth: 'auth+TLS', plain: 'plain NATS' };

/** One deployment: its processes, the spare token for the bare import reference, and what was measured on it. */
interface Side {
  mode: Mode;
  d: Deployment;
  hub: ManagedProcess;
  refToken: SoftHsmToken;
  setupMs: number;
  tput: ThroughputResult[];
  latency: LatencyResult[];
  catchup?: CatchupResult;
}

interface Bench {
  rt: HubRuntime;
  createKey: CreateKey;
  distribute: Distribute;
  makeKeys(prefix: string, n: number): Promise<string[]>;
}

interface Progress {
  total: number;
  confirmed: number;
  failed: number;
  sent: number;
  firstConfirmed: number | null;
  lastConfirmed: number | null;
  lastSent: number | null;
}

interface ThroughputResult {
  rate: number;
  expected: number;
  progress: Progress;
  ms: number;
  distributeCallsMs: number;
  /** From the call until the relay's last transaction that published a package of it. */
  publishedAfterMs: number;
  createKeysMs: number;
  perListenerDoneMs: Record<string, number>;
}

interface LatencyResult {
  confirmed: number;
  offeredSeconds: number;
  errors: Array<string | undefined>;
  latencyMs: number[];
  callMs: number[];
  toRelayTxMs: number[];
  relayTxToConfirmedMs: number[];
}

interface CatchupResult {
  bareImportOwnToken: RateResult;
  bareImportNearby: RateResult;
  progress: Progress;
  startAt: number;
  readyAt: number;
  lastAt: number;
  fromStartPerSec: number;
  steadyPerSec: number | null;
}

async function progress(rt: HubRuntime, actor: string): Promise<Progress> {
  const [r] = await rt.ds.query(
    `SELECT count(*) AS total,
            count(*) FILTER (WHERE state = 'confirmed') AS confirmed,
            count(*) FILTER (WHERE state = 'failed') AS failed,
            count(*) FILTER (WHERE state IN ('sent', 'confirmed')) AS sent,
            min(confirmed_at) AS first_confirmed, max(confirmed_at) AS last_confirmed, max(last_sent_at) AS last_sent
       FROM distributions WHERE created_by = $1`,
    [actor],
  );
  const ms = (d: Date | null): number | null => (d ? d.getTime() : null);
  return {
    total: Number(r.total),
    confirmed: Number(r.confirmed),
    failed: Number(r.failed),
    sent: Number(r.sent),
    firstConfirmed: ms(r.first_confirmed),
    lastConfirmed: ms(r.last_confirmed),
    lastSent: ms(r.last_sent),
  };
}

async function waitSettled(rt: HubRuntime, actor: string, expected: number, timeoutMs: number): Promise<Progress> {
  return pollUntil(`${expected} distributions by ${actor} confirmed`, timeoutMs, 50, async () => {
    const p = await progress(rt, actor);
    return p.confirmed + p.failed >= expected ? p : undefined;
  });
}

/**
 * The bench's hub runtime on one deployment's hub token and database, for
 * one measurement: SOFTHSM2_CONF and the PINs point at that deployment while
 * it is open, and the PKCS#11 module is finalized when it closes (nothing
 * else of the bench holds it), so the next one can use the other deployment.
 */
async function withBench<T>(side: Side, fn: (b: Bench) => Promise<T>): Promise<T> {
  const restore = useSoftHsm(side.d.hsm, { [BENCH_PIN_ENV]: 'hub', [REF_PIN_ENV]: side.refToken.label, [SITE_PIN_ENV]: CATCHUP_SITE });
  try {
    const file = JSON.parse(await readFile(side.d.hubConfigPath, 'utf8')) as { hsm: Record<string, unknown> };
    const config = hubConfigSchema.parse({ ...file, hsm: { ...file.hsm, pinEnv: BENCH_PIN_ENV } });
    const rt = await openHubRuntime(config, { logger: createLogger('keyhub-bench', 'warn') });
    try {
      const createKey = rt.container.resolve(CreateKey);
      const distribute = rt.container.resolve(Distribute);
      const makeKeys = (prefix: string, n: number): Promise<string[]> =>
        mapPool(
          Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`),
          4,
          async (name) => (await createKey.execute({ name, algorithm: 'AES-256', actor: 'bench' })).name,
        );
      return await fn({ rt, createKey, distribute, makeKeys });
    } finally {
      await rt.close();
    }
  } finally {
    restore();
  }
}

/** (a) throughput: 200 fresh keys to all four listeners. */
async function throughput(side: Side, round: number): Promise<ThroughputResult> {
  const actor = `bench-e2e-tput-${round}`;
  return withBench(side, async ({ rt, distribute, makeKeys }) => {
    const t = Date.now();
    const keys = await makeKeys(`e2e-tput-${round}`, THROUGHPUT_KEYS);
    const createKeysMs = Date.now() - t;
    const t0 = Date.now();
    await distribute.execute({ keys: keys.map((name) => ({ name })), to: 'all', actor });
    const callsDone = Date.now();
    const expected = THROUGHPUT_KEYS * SITES.length;
    const p = await waitSettled(rt, actor, expected, 180_000);
    const ms = (p.lastConfirmed ?? Date.now()) - t0;
    const perSite: Array<{ listener_id: string; n: string; last: Date }> = await rt.ds.query(
      `SELECT listener_id, count(*) AS n, max(confirmed_at) AS last FROM distributions WHERE created_by = $1 AND state = 'confirmed' GROUP BY listener_id ORDER BY listener_id`,
      [actor],
    );
    say(`e2e throughput ${round} [${MODE_TEXT[side.mode]}]: ${p.confirmed} confirmed in ${(ms / 1000).toFixed(2)} s = ${((p.confirmed * 1000) / ms).toFixed(1)}/s`);
    return {
      rate: (p.confirmed * 1000) / ms,
      expected,
      progress: p,
      ms,
      distributeCallsMs: callsDone - t0,
      publishedAfterMs: (p.lastSent ?? t0) - t0,
      createKeysMs,
      perListenerDoneMs: Object.fromEntries(perSite.map((r) => [r.listener_id, new Date(r.last).getTime() - t0])),
    };
  });
}

/** (b) latency at light load: 10 distributions/s for 10 s, one fresh key to one listener each. */
async function latency(side: Side, round: number): Promise<LatencyResult> {
  const actor = `bench-e2e-latency-${round}`;
  return withBench(side, async ({ rt, distribute, makeKeys }) => {
    const latKeys = await makeKeys(`e2e-lat-${round}`, LATENCY_CALLS);
    await sleep(1000);
    const calls: Array<{ startedAt: number; returnedAt?: number; result?: DistributeResult; error?: string }> = [];
    const pending: Array<Promise<void>> = [];
    const start = Date.now();
    for (let i = 0; i < LATENCY_CALLS; i++) {
      const due = start + i * LATENCY_INTERVAL_MS;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      const to: Destination[] = [{ listenerId: SITES[i % SITES.length] }];
      const call: (typeof calls)[number] = { startedAt: Date.now() };
      calls.push(call);
      // Open loop: the next call does not wait for this one.
      pending.push(
        distribute.execute({ keys: [{ name: latKeys[i] }], to, actor }).then(
          (r) => {
            call.returnedAt = Date.now();
            call.result = r;
          },
          (err: unknown) => {
            call.error = err instanceof Error ? err.message : String(err);
          },
        ),
      );
    }
    await Promise.all(pending);
    const offeredSeconds = (Date.now() - start) / 1000;
    await waitSettled(rt, actor, LATENCY_CALLS, 60_000);
    const rows: Array<{ id: string; state: string; last_sent_at: Date | null; confirmed_at: Date | null }> = await rt.ds.query(
      `SELECT id, state, last_sent_at, confirmed_at FROM distributions WHERE created_by = $1`,
      [actor],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const r: LatencyResult = { confirmed: 0, offeredSeconds, errors: calls.filter((c) => c.error).map((c) => c.error), latencyMs: [], callMs: [], toRelayTxMs: [], relayTxToConfirmedMs: [] };
    for (const c of calls) {
      const id = c.result?.queued[0]?.distributionId;
      const row = id ? byId.get(id) : undefined;
      if (c.returnedAt) r.callMs.push(c.returnedAt - c.startedAt);
      if (!row?.confirmed_at) continue;
      r.latencyMs.push(row.confirmed_at.getTime() - c.startedAt);
      if (row.last_sent_at) {
        r.toRelayTxMs.push(row.last_sent_at.getTime() - c.startedAt);
        r.relayTxToConfirmedMs.push(row.confirmed_at.getTime() - row.last_sent_at.getTime());
      }
    }
    r.confirmed = r.latencyMs.length;
    say(`e2e latency ${round} [${MODE_TEXT[side.mode]}]: p50 ${percentile(r.latencyMs, 50)?.toFixed(0)} ms, p99 ${percentile(r.latencyMs, 99)?.toFixed(0)} ms`);
    return r;
  });
}

/** (c) catch-up: a stopped listener gets 1,000 packages queued, then starts. */
async function catchup(side: Side): Promise<CatchupResult> {
  const { d } = side;
  const site = CATCHUP_SITE;
  await d.stopListener(site);
  return withBench(side, async ({ rt, distribute, makeKeys }) => {
    const catchKeys = await makeKeys('e2e-catchup', CATCHUP_PACKAGES);
    await distribute.execute({ keys: catchKeys.map((name) => ({ name })), to: [{ listenerId: site }], actor: 'bench-e2e-catchup' });
    await pollUntil('catch-up packages published', 120_000, 100, async () => {
      const p = await progress(rt, 'bench-e2e-catchup');
      return p.sent >= CATCHUP_PACKAGES ? p : undefined;
    });
    const nearby = await bareTokenImport(d.hsm.modulePath, side.refToken.label, REF_PIN_ENV);
    // The target's own bare import rate: the stopped listener's token, as full as it is now, measured
    // seconds before the listener starts on it (the reference objects are destroyed again).
    const own = await bareTokenImport(d.hsm.modulePath, site, SITE_PIN_ENV, true);
    const startAt = Date.now();
    await d.startListener(site);
    const readyAt = Date.now();
    const caught = await waitSettled(rt, 'bench-e2e-catchup', CATCHUP_PACKAGES, 240_000);
    const lastAt = caught.lastConfirmed ?? Date.now();
    const fromStart = (caught.confirmed * 1000) / (lastAt - startAt);
    const steady = caught.firstConfirmed !== null && lastAt > caught.firstConfirmed ? ((caught.confirmed - 1) * 1000) / (lastAt - caught.firstConfirmed) : null;
    say(
      `e2e catch-up [${MODE_TEXT[side.mode]}]: ${fromStart.toFixed(1)} imports/s from start (${steady?.toFixed(1)}/s first to last); bare token import just before: ${own.rate.toFixed(1)}/s on the listener's token, ${nearby.rate.toFixed(1)}/s on a fresh one`,
    );
    return { bareImportOwnToken: own, bareImportNearby: nearby, progress: caught, startAt, readyAt, lastAt, fromStartPerSec: fromStart, steadyPerSec: steady };
  });
}

async function setUp(mode: Mode, stage: StageRun): Promise<Side> {
  const t = Date.now();
  // Re-sends would muddy the catch-up figure: a stopped listener still counts as
  // online for a while and its unconfirmed packages would be issued again.
  const d = await Deployment.create(SITES, { delivery: { resendAfterSeconds: 3600 }, checkpointEverySeconds: 30, ...(mode === 'plain' ? { plainNats: true } : {}) });
  stage.cleanup.add(`deployment, ${MODE_TEXT[mode]} (hub, listeners, nats-server, tokens, database)`, () => d.cleanup());
  // A spare token for re-measuring the bare import rate next to the catch-up.
  const refToken = await d.hsm.addToken('bench-import-ref');
  await d.initHub();
  const hub = await d.startHub();
  // Independent per site (own home, token, CLI calls), so enrolled side by side.
  await Promise.all(SITES.map((id) => d.enrollListener(id)));
  const setupMs = Date.now() - t;
  say(`e2e [${MODE_TEXT[mode]}]: hub and ${SITES.length} listeners up and enrolled in ${(setupMs / 1000).toFixed(1)} s`);
  return { mode, d, hub, refToken, setupMs, tput: [], latency: [] };
}

const ratioNote = (a: number | null | undefined, p: number | null | undefined, digits = 1, unit = ''): string =>
  `auth+TLS ${a?.toFixed(digits) ?? 'n/a'}${unit} / plain ${p?.toFixed(digits) ?? 'n/a'}${unit}`;

export async function runE2e(stage: StageRun): Promise<void> {
  const { rec, ctx } = stage;
  const auth = await setUp('auth', stage);
  const plain = await setUp('plain', stage);
  rec.details.setupMs = { auth: auth.setupMs, plain: plain.setupMs };

  // Each measurement on both deployments back to back; who goes first alternates from one to the next.
  let turn = 0;
  const pair = (): Side[] => (turn++ % 2 === 1 ? [plain, auth] : [auth, plain]);
  for (let round = 1; round <= THROUGHPUT_ROUNDS; round++) for (const s of pair()) s.tput.push(await throughput(s, round));
  for (let round = 1; round <= LATENCY_ROUNDS; round++) for (const s of pair()) s.latency.push(await latency(s, round));
  for (const s of pair()) s.catchup = await catchup(s);

  recordThroughput(rec, auth, plain, ctx.limits.tokenImport);
  recordLatency(rec, auth, plain);
  recordCatchup(rec, auth, plain, ctx.limits.tokenImport);

  // Memory of the `keyhub serve` children, read before the deployments are torn down.
  const memory = (s: Side) => {
    const hubPid = s.hub.child.pid;
    return {
      hubServe: hubPid ? procMemoryMb(hubPid) : { rssMb: null, hwmMb: null },
      listeners: Object.fromEntries(
        SITES.map((id) => {
          const pid = s.d.site(id).process?.child.pid;
          return [id, pid ? procMemoryMb(pid) : null];
        }),
      ),
    };
  };
  const mem = { auth: memory(auth), plain: memory(plain) };
  rec.goal('serve_hwm_mb', '`keyhub serve` peak RSS (VmHWM), auth+TLS', mem.auth.hubServe.hwmMb, 'MB', '<', 500, {
    note: `VmRSS now ${mem.auth.hubServe.rssMb?.toFixed(0)} MB; with plain NATS: peak ${mem.plain.hubServe.hwmMb?.toFixed(0)} MB`,
  });
  rec.details.memory = mem;
}

/** The run with the median rate. */
function medianRun(rs: ThroughputResult[]): ThroughputResult {
  return [...rs].sort((x, y) => x.rate - y.rate)[Math.floor(rs.length / 2)];
}

/** Latency runs of one mode as one sample. */
function pooled(rs: LatencyResult[]): LatencyResult {
  return {
    confirmed: rs.reduce((n, r) => n + r.confirmed, 0),
    offeredSeconds: rs.reduce((n, r) => n + r.offeredSeconds, 0),
    errors: rs.flatMap((r) => r.errors),
    latencyMs: rs.flatMap((r) => r.latencyMs),
    callMs: rs.flatMap((r) => r.callMs),
    toRelayTxMs: rs.flatMap((r) => r.toRelayTxMs),
    relayTxToConfirmedMs: rs.flatMap((r) => r.relayTxToConfirmedMs),
  };
}

function recordThroughput(rec: StageRecorder, auth: Side, plain: Side, tokenImport: number | undefined): void {
  const a = medianRun(auth.tput);
  const p = medianRun(plain.tput);
  const runs = (rs: ThroughputResult[]): string => `median of ${rs.length} runs: ${rs.map((r) => r.rate.toFixed(0)).join(', ')}/s`;
  const label = `throughput: ${THROUGHPUT_KEYS} keys x ${SITES.length} listeners, confirmed deliveries/s`;
  const note = (r: ThroughputResult): string =>
    `${r.progress.confirmed}/${r.expected} confirmed, ${r.progress.failed} failed in ${(r.ms / 1000).toFixed(2)} s; the Distribute call took ${(r.distributeCallsMs / 1000).toFixed(2)} s; all published after ${(r.publishedAfterMs / 1000).toFixed(2)} s`;
  rec.metric('tput_rate', `${label}, auth+TLS`, a.rate, 'deliveries/s', {
    note: `${runs(auth.tput)}; that run: ${note(a)}${tokenImport ? `; for scale: ${SITES.length} tokens x bare sequential token import = ${(SITES.length * tokenImport).toFixed(0)}/s` : ''}`,
  });
  rec.metric('tput_rate_plain', `${label}, plain NATS (no auth, no TLS)`, p.rate, 'deliveries/s', {
    note: `${runs(plain.tput)}, each right before or after an auth+TLS run; that run: ${note(p)}`,
  });
  const paired = auth.tput.map((x, i) => (x.rate / plain.tput[i].rate).toFixed(2)).join(', ');
  const callS = (rs: ThroughputResult[]): number | null => (median(rs.map((r) => r.distributeCallsMs)) ?? NaN) / 1000;
  rec.metric('tput_auth_vs_plain', 'throughput: auth+TLS / plain NATS', a.rate / p.rate, 'x', {
    digits: 3,
    note: `ratio of the medians; per pair of runs side by side: ${paired}; the Distribute call (median) ${ratioNote(callS(auth.tput), callS(plain.tput), 2, ' s')}`,
  });
  rec.details.throughput = { keys: THROUGHPUT_KEYS, listeners: SITES.length, auth: auth.tput, plain: plain.tput };
}

function recordLatency(rec: StageRecorder, auth: Side, plain: Side): void {
  const a = pooled(auth.latency);
  const p = pooled(plain.latency);
  const calls = LATENCY_CALLS * LATENCY_ROUNDS;
  const at = `latency at ${1000 / LATENCY_INTERVAL_MS}/s`;
  const split = (r: LatencyResult, f: (v: number[]) => number | null): string =>
    `Distribute call ${f(r.callMs)?.toFixed(1)} ms, call -> relay tx ${f(r.toRelayTxMs)?.toFixed(1)} ms, relay tx -> confirmed ${f(r.relayTxToConfirmedMs)?.toFixed(1)} ms`;
  const p50 = (r: LatencyResult) => percentile(r.latencyMs, 50);
  const p99 = (r: LatencyResult) => percentile(r.latencyMs, 99);
  rec.metric('latency_p50', `${at}: p50 (call -> confirmed_at), auth+TLS`, p50(a), 'ms', {
    note: `${LATENCY_ROUNDS} runs of ${LATENCY_CALLS} calls pooled, ${a.confirmed}/${calls} confirmed over ${a.offeredSeconds.toFixed(1)} s; median split: ${split(a, median)}`,
  });
  rec.goal('latency_p99', `${at}: p99 (call -> confirmed_at), auth+TLS`, p99(a), 'ms', '<=', 100, {
    note: `max ${Math.max(...a.latencyMs).toFixed(0)} ms; p99 of the split: ${split(a, (v) => percentile(v, 99))}`,
  });
  rec.metric('latency_p50_plain', `${at}: p50, plain NATS (no auth, no TLS)`, p50(p), 'ms', {
    note: `${LATENCY_ROUNDS} runs of ${LATENCY_CALLS} calls pooled, each run right before or after an auth+TLS run; ${p.confirmed}/${calls} confirmed over ${p.offeredSeconds.toFixed(1)} s; median split: ${split(p, median)}`,
  });
  rec.metric('latency_p99_plain', `${at}: p99, plain NATS`, p99(p), 'ms', { note: `max ${Math.max(...p.latencyMs).toFixed(0)} ms; p99 of the split: ${split(p, (v) => percentile(v, 99))}` });
  rec.metric('latency_p50_auth_vs_plain', `${at}: p50 auth+TLS / p50 plain NATS`, (p50(a) ?? NaN) / (p50(p) ?? NaN), 'x', {
    digits: 3,
    note: `p50 ${ratioNote(p50(a), p50(p), 0, ' ms')} (per run: auth+TLS ${auth.latency.map((r) => p50(r)?.toFixed(0)).join(', ')}, plain ${plain.latency.map((r) => p50(r)?.toFixed(0)).join(', ')} ms); p99 ${ratioNote(p99(a), p99(p), 0, ' ms')}; relay tx -> confirmed (publish, delivery, import, receipt) median ${ratioNote(median(a.relayTxToConfirmedMs), median(p.relayTxToConfirmedMs), 1, ' ms')}`,
  });
  rec.details.latency = {
    calls: LATENCY_CALLS,
    intervalMs: LATENCY_INTERVAL_MS,
    rounds: LATENCY_ROUNDS,
    auth: auth.latency,
    plain: plain.latency,
    note: 'last_sent_at is now() of the relay transaction (its start, just before the publish); confirmed_at is set by the hub when it applies the receipt',
  };
}

function recordCatchup(rec: StageRecorder, auth: Side, plain: Side, bare: number | undefined): void {
  const a = auth.catchup!;
  const p = plain.catchup!;
  const own = (r: CatchupResult) => r.fromStartPerSec / r.bareImportOwnToken.rate;
  rec.metric('catchup_rate', `catch-up: ${CATCHUP_PACKAGES} queued packages, imports/s from listener start, auth+TLS`, a.fromStartPerSec, 'imports/s', {
    note: `${a.progress.confirmed} confirmed, ${a.progress.failed} failed in ${((a.lastAt - a.startAt) / 1000).toFixed(2)} s; process ready after ${((a.readyAt - a.startAt) / 1000).toFixed(2)} s; first to last confirmation ${a.steadyPerSec?.toFixed(1)} imports/s`,
  });
  rec.goal('catchup_ratio', "catch-up, auth+TLS: ratio to the bare import rate of the listener's own target token", own(a), 'x', '>=', 0.8, {
    digits: 3,
    note: `bare: ${a.bareImportOwnToken.ops} sequential C_UnwrapKey into token objects on that token, seconds before the listener started on it: ${a.bareImportOwnToken.rate.toFixed(1)}/s; first-to-last ratio ${a.steadyPerSec ? (a.steadyPerSec / a.bareImportOwnToken.rate).toFixed(3) : 'n/a'}`,
  });
  rec.metric('catchup_rate_plain', `catch-up: imports/s from listener start, plain NATS (no auth, no TLS)`, p.fromStartPerSec, 'imports/s', {
    note: `${p.progress.confirmed} confirmed, ${p.progress.failed} failed in ${((p.lastAt - p.startAt) / 1000).toFixed(2)} s; process ready after ${((p.readyAt - p.startAt) / 1000).toFixed(2)} s; ratio to its own token's bare import rate (${p.bareImportOwnToken.rate.toFixed(1)}/s) ${own(p).toFixed(3)}`,
  });
  rec.metric('catchup_auth_vs_plain', 'catch-up: imports/s auth+TLS / plain NATS', a.fromStartPerSec / p.fromStartPerSec, 'x', {
    digits: 3,
    note: `each against its own token's bare import rate (the listener's HSM bounds the catch-up, and the two tokens differ): ${ratioNote(own(a), own(p), 3)}, ratio ${(own(a) / own(p)).toFixed(3)}; process ready after ${ratioNote((a.readyAt - a.startAt) / 1000, (p.readyAt - p.startAt) / 1000, 2, ' s')}`,
  });
  rec.metric('catchup_ratio_stage_bare', 'catch-up, auth+TLS: ratio to the token-import rate of stage bare (a fresh token, minutes earlier)', bare ? a.fromStartPerSec / bare : null, 'x', {
    digits: 3,
    note: bare ? `stage bare: ${bare.toFixed(1)}/s; reference for run-to-run noise` : 'bare not measured in this run',
  });
  rec.metric('catchup_ratio_nearby', 'catch-up, auth+TLS: ratio to the bare token-import rate on a fresh token, just before', a.fromStartPerSec / a.bareImportNearby.rate, 'x', {
    digits: 3,
    note: `re-measured ${a.bareImportNearby.rate.toFixed(1)}/s (${a.bareImportNearby.ops} sequential token unwraps on a fresh token); reference`,
  });
  rec.details.catchup = { listener: CATCHUP_SITE, packages: CATCHUP_PACKAGES, auth: a, plain: p };
}

/**
 * Sequential C_UnwrapKey into token objects, as stage bare (e) does, bounded
 * to 150 ops / 10 s; `removeAfter` destroys the objects it made (on a
 * listener's own token).
 */
async function bareTokenImport(modulePath: string, tokenLabel: string, pinEnv: string, removeAfter = false): Promise<RateResult> {
  const hsm = await Pkcs11Hsm.open({ module: modulePath, tokenLabel, pinEnv, sessions: 1 });
  const made: Buffer[] = [];
  try {
    const kek = await hsm.generateAesKey(32, { token: false, wrap: true, unwrap: true });
    const source = await hsm.generateAesKey(32, { token: false, extractable: true });
    const blob = await hsm.wrapKwp(kek, source);
    let i = 0;
    return await measureRate({ concurrency: 1, maxOps: 150, maxMs: 10_000, warmupOps: 3 }, async () => {
      const id = Buffer.from(`bench-ref-${i++}`);
      made.push(await hsm.unwrapKwp(kek, blob, 32, { token: true, label: id.toString(), id, sensitive: true, encrypt: true, decrypt: true }));
    });
  } finally {
    if (removeAfter) for (const h of made) await hsm.destroy(h).catch(() => undefined);
    await hsm.close();
  }
}
