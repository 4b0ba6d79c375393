/**
 * Stage "e2e": a real deployment from the test harness — `keyhub serve` and
 * four `keyhub-listener run` processes, each listener importing into its own
 * SoftHSM token — driven from an in-process hub runtime of the bench (same
 * database and hub token as the serve process). Measures confirmed
 * deliveries/s, latency at light load and a listener's catch-up rate.
 */
import { readFile } from 'node:fs/promises';
import { createLogger, Pkcs11Hsm } from '@keyhub/shared';
import { hubConfigSchema } from '@keyhub/hub/dist/config';
import { openHubRuntime, type HubRuntime } from '@keyhub/hub/dist/container';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { Distribute, type Destination, type DistributeResult } from '@keyhub/hub/dist/operations/distributions/distribute';
import { Deployment } from '../harness/deployment';
import type { StageRun } from './context';
import { mapPool, measureRate, median, percentile, pollUntil, procMemoryMb, say, sleep, type RateResult } from './lib';
import { useSoftHsm } from './softhsm-env';

const SITES = ['site-1', 'site-2', 'site-3', 'site-4'];
const THROUGHPUT_KEYS = 200;
const LATENCY_CALLS = 100;
const LATENCY_INTERVAL_MS = 100;
const CATCHUP_PACKAGES = 1000;
const BENCH_PIN_ENV = 'KEYHUB_BENCH_E2E_HUB_PIN';
const REF_PIN_ENV = 'KEYHUB_BENCH_E2E_REF_PIN';
const SITE_PIN_ENV = 'KEYHUB_BENCH_E2E_SITE_PIN';

interface Progress {
  total: number;
  confirmed: number;
  failed: number;
  sent: number;
  firstConfirmed: number | null;
  lastConfirmed: number | null;
  lastSent: number | null;
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

export async function runE2e(stage: StageRun): Promise<void> {
  const { rec, cleanup, ctx } = stage;
  // Re-sends would muddy the catch-up figure: a stopped listener still counts as
  // online for a while and its unconfirmed packages would be issued again.
  const d = await Deployment.create(SITES, { delivery: { resendAfterSeconds: 3600 } });
  cleanup.add('deployment (hub, listeners, nats-server, tokens, database)', () => d.cleanup());
  // A spare token for re-measuring the bare import rate next to the catch-up
  // (created before this process initializes the PKCS#11 module, so it sees it).
  const refToken = await d.hsm.addToken('bench-import-ref');
  let t = Date.now();
  await d.initHub();
  const hub = await d.startHub();
  // Independent per site (own home, token, CLI calls), so enrolled side by side.
  await Promise.all(SITES.map((id) => d.enrollListener(id)));
  rec.details.setupMs = Date.now() - t;
  say(`e2e: hub and ${SITES.length} listeners up and enrolled in ${((Date.now() - t) / 1000).toFixed(1)} s`);

  // The bench's own runtime on the hub token and database, for CreateKey and Distribute.
  const catchupSite = SITES[SITES.length - 1];
  cleanup.add('SOFTHSM2_CONF', useSoftHsm(d.hsm, { [BENCH_PIN_ENV]: 'hub', [REF_PIN_ENV]: refToken.label, [SITE_PIN_ENV]: catchupSite }));
  const file = JSON.parse(await readFile(d.hubConfigPath, 'utf8')) as { hsm: Record<string, unknown> };
  const config = hubConfigSchema.parse({ ...file, hsm: { ...file.hsm, pinEnv: BENCH_PIN_ENV } });
  const rt = await openHubRuntime(config, { logger: createLogger('keyhub-bench', 'warn') });
  cleanup.add('bench hub runtime (e2e)', () => rt.close());
  const createKey = rt.container.resolve(CreateKey);
  const distribute = rt.container.resolve(Distribute);
  const makeKeys = (prefix: string, n: number): Promise<string[]> =>
    mapPool(
      Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`),
      4,
      async (name) => (await createKey.execute({ name, algorithm: 'AES-256', actor: 'bench' })).name,
    );

  // (a) throughput: 200 keys to all four listeners.
  t = Date.now();
  const tputKeys = await makeKeys('e2e-tput', THROUGHPUT_KEYS);
  rec.details.createThroughputKeysMs = Date.now() - t;
  const t0 = Date.now();
  await distribute.execute({ keys: tputKeys.map((name) => ({ name })), to: 'all', actor: 'bench-e2e-tput' });
  const callsDone = Date.now();
  const expectTput = THROUGHPUT_KEYS * SITES.length;
  const tput = await waitSettled(rt, 'bench-e2e-tput', expectTput, 180_000);
  const tputMs = (tput.lastConfirmed ?? Date.now()) - t0;
  const perSite: Array<{ listener_id: string; n: string; last: Date }> = await rt.ds.query(
    `SELECT listener_id, count(*) AS n, max(confirmed_at) AS last FROM distributions WHERE created_by = 'bench-e2e-tput' AND state = 'confirmed' GROUP BY listener_id ORDER BY listener_id`,
  );
  rec.metric('tput_rate', `throughput: ${THROUGHPUT_KEYS} keys x ${SITES.length} listeners, confirmed deliveries/s`, (tput.confirmed * 1000) / tputMs, 'deliveries/s', {
    note: `${tput.confirmed}/${expectTput} confirmed, ${tput.failed} failed in ${(tputMs / 1000).toFixed(2)} s; the Distribute call took ${((callsDone - t0) / 1000).toFixed(2)} s; all published after ${(((tput.lastSent ?? t0) - t0) / 1000).toFixed(2)} s${ctx.limits.tokenImport ? `; for scale: ${SITES.length} tokens x bare sequential token import = ${(SITES.length * ctx.limits.tokenImport).toFixed(0)}/s` : ''}`,
  });
  rec.details.throughput = {
    keys: THROUGHPUT_KEYS,
    listeners: SITES.length,
    expected: expectTput,
    progress: tput,
    ms: tputMs,
    distributeCallsMs: callsDone - t0,
    perListenerDoneMs: Object.fromEntries(perSite.map((r) => [r.listener_id, new Date(r.last).getTime() - t0])),
  };
  say(`e2e throughput: ${tput.confirmed} confirmed in ${(tputMs / 1000).toFixed(2)} s`);

  // (b) latency at light load: 10 distributions/s for 10 s, one key to one listener each.
  const latKeys = await makeKeys('e2e-lat', LATENCY_CALLS);
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
      distribute.execute({ keys: [{ name: latKeys[i] }], to, actor: 'bench-e2e-latency' }).then(
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
  await waitSettled(rt, 'bench-e2e-latency', LATENCY_CALLS, 60_000);
  const rows: Array<{ id: string; state: string; last_sent_at: Date | null; confirmed_at: Date | null }> = await rt.ds.query(
    `SELECT id, state, last_sent_at, confirmed_at FROM distributions WHERE created_by = 'bench-e2e-latency'`,
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const latency: number[] = [];
  const callMs: number[] = [];
  const toSent: number[] = [];
  const sentToConfirmed: number[] = [];
  for (const c of calls) {
    const id = c.result?.queued[0]?.distributionId;
    const row = id ? byId.get(id) : undefined;
    if (c.returnedAt) callMs.push(c.returnedAt - c.startedAt);
    if (!row?.confirmed_at) continue;
    latency.push(row.confirmed_at.getTime() - c.startedAt);
    if (row.last_sent_at) {
      toSent.push(row.last_sent_at.getTime() - c.startedAt);
      sentToConfirmed.push(row.confirmed_at.getTime() - row.last_sent_at.getTime());
    }
  }
  const p99 = percentile(latency, 99);
  rec.metric('latency_p50', `latency at ${1000 / LATENCY_INTERVAL_MS}/s: p50 (call -> confirmed_at)`, percentile(latency, 50), 'ms', {
    note: `${latency.length}/${LATENCY_CALLS} confirmed over ${offeredSeconds.toFixed(1)} s; median split: Distribute call ${median(callMs)?.toFixed(1)} ms, call -> relay tx ${median(toSent)?.toFixed(1)} ms, relay tx -> confirmed ${median(sentToConfirmed)?.toFixed(1)} ms`,
  });
  rec.goal('latency_p99', `latency at ${1000 / LATENCY_INTERVAL_MS}/s: p99 (call -> confirmed_at)`, p99, 'ms', '<=', 100, {
    note: `max ${Math.max(...latency).toFixed(0)} ms; p99 of the split: call ${percentile(callMs, 99)?.toFixed(1)} ms, call -> relay tx ${percentile(toSent, 99)?.toFixed(1)} ms, relay tx -> confirmed ${percentile(sentToConfirmed, 99)?.toFixed(1)} ms`,
  });
  rec.details.latency = {
    calls: LATENCY_CALLS,
    intervalMs: LATENCY_INTERVAL_MS,
    confirmed: latency.length,
    errors: calls.filter((c) => c.error).map((c) => c.error),
    latencyMs: latency,
    callMs,
    toRelayTxMs: toSent,
    relayTxToConfirmedMs: sentToConfirmed,
    note: 'last_sent_at is now() of the relay transaction (its start, just before the publish); confirmed_at is set by the hub when it applies the receipt',
  };
  say(`e2e latency: p50 ${percentile(latency, 50)?.toFixed(0)} ms, p99 ${p99?.toFixed(0)} ms`);

  // (c) catch-up: a stopped listener gets 500 packages queued, then starts.
  const site = catchupSite;
  await d.stopListener(site);
  const catchKeys = await makeKeys('e2e-catchup', CATCHUP_PACKAGES);
  await distribute.execute({ keys: catchKeys.map((name) => ({ name })), to: [{ listenerId: site }], actor: 'bench-e2e-catchup' });
  await pollUntil('catch-up packages published', 120_000, 100, async () => {
    const p = await progress(rt, 'bench-e2e-catchup');
    return p.sent >= CATCHUP_PACKAGES ? p : undefined;
  });
  const nearby = await bareTokenImport(d.hsm.modulePath, refToken.label, REF_PIN_ENV);
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
  rec.metric('catchup_rate', `catch-up: ${CATCHUP_PACKAGES} queued packages, imports/s from listener start`, fromStart, 'imports/s', {
    note: `${caught.confirmed} confirmed, ${caught.failed} failed in ${((lastAt - startAt) / 1000).toFixed(2)} s; process ready after ${((readyAt - startAt) / 1000).toFixed(2)} s; first to last confirmation ${steady?.toFixed(1)} imports/s`,
  });
  rec.goal('catchup_ratio', "catch-up: ratio to the bare import rate of the listener's own target token", fromStart / own.rate, 'x', '>=', 0.8, {
    digits: 3,
    note: `bare: ${own.ops} sequential C_UnwrapKey into token objects on that token, seconds before the listener started on it: ${own.rate.toFixed(1)}/s; first-to-last ratio ${steady ? (steady / own.rate).toFixed(3) : 'n/a'}`,
  });
  const bare = ctx.limits.tokenImport;
  rec.metric('catchup_ratio_stage_bare', 'catch-up: ratio to the token-import rate of stage bare (a fresh token, minutes earlier)', bare ? fromStart / bare : null, 'x', {
    digits: 3,
    note: bare ? `stage bare: ${bare.toFixed(1)}/s; reference for run-to-run noise` : 'bare not measured in this run',
  });
  rec.metric('catchup_ratio_nearby', 'catch-up: ratio to the bare token-import rate on a fresh token, just before', fromStart / nearby.rate, 'x', {
    digits: 3,
    note: `re-measured ${nearby.rate.toFixed(1)}/s (${nearby.ops} sequential token unwraps on a fresh token); reference`,
  });
  rec.details.catchup = {
    bareImportOwnToken: own,
    bareImportNearby: nearby,
    listener: site,
    packages: CATCHUP_PACKAGES,
    progress: caught,
    startAt,
    readyAt,
    lastAt,
    fromStartPerSec: fromStart,
    steadyPerSec: steady,
  };
  say(
    `e2e catch-up: ${fromStart.toFixed(1)} imports/s from start (${steady?.toFixed(1)}/s first to last); bare token import just before: ${own.rate.toFixed(1)}/s on the listener's token, ${nearby.rate.toFixed(1)}/s on a fresh one`,
  );

  // Memory of the `keyhub serve` child, read before the deployment is torn down.
  const hubPid = hub.child.pid;
  const hubMem = hubPid ? procMemoryMb(hubPid) : { rssMb: null, hwmMb: null };
  rec.goal('serve_hwm_mb', '`keyhub serve` peak RSS (VmHWM)', hubMem.hwmMb, 'MB', '<', 500, { note: `VmRSS now ${hubMem.rssMb?.toFixed(0)} MB` });
  const listenerMem = Object.fromEntries(
    SITES.map((id) => {
      const pid = d.site(id).process?.child.pid;
      return [id, pid ? procMemoryMb(pid) : null];
    }),
  );
  rec.details.memory = { hubServe: hubMem, listeners: listenerMem };
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
