/**
 * Stage "fanout": the hub alone, in process — Distribute writes signed
 * packages to the outbox, the OutboxRelay publishes them to JetStream — with
 * simulated listeners in the database (no listener processes). Measures
 * packages/s from the Distribute call until the outbox is empty, and where
 * the time goes (HSM, database, publish acks).
 *
 * Two nats-servers side by side, and a bus and relay for each, connected as
 * `keyhub serve` connects: one with the project's auth and TLS (operator and
 * accounts from the hub's HSM, TLS from the hub CA; the hub's user JWT signed
 * at start), what production runs, and a plain one (no auth, no TLS). Passes
 * alternate between the two, so the cost of TLS and JWT auth is measured in
 * the same run; only one relay runs at a time.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as path from 'node:path';
import { PostgresQueryRunner } from 'typeorm/driver/postgres/PostgresQueryRunner';
import type { Hsm } from '@keyhub/shared';
import type { HubBus } from '@keyhub/hub/dist/bus/hub-bus';
import type { HubConfig } from '@keyhub/hub/dist/config';
import { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { Distribute, type Destination, type KeySelector } from '@keyhub/hub/dist/operations/distributions/distribute';
import { OutboxRelay } from '@keyhub/hub/dist/relay/outbox-relay';
import { TOKENS } from '@keyhub/hub/dist/tokens';
import type { StageRun } from './context';
import { connectHubBusAsServe, createHubFixture, insertActiveListeners, listenerIds, startAuthNats } from './hub-fixture';
import { BusyTracker, cpuByComponent, instrument, mapPool, mb, median as medianOf, now, pollUntil, procMemoryMb, say, sleep } from './lib';

const LISTENERS = 1000;
const MANY_KEYS = 1000;
const MANY_LISTENERS = 10;
/** Measured passes per scenario and NATS mode; the median counts. */
const REPEATS = 5;

/** 'auth': the project's JWT auth and TLS (production); 'plain': a server without either. */
type Mode = 'auth' | 'plain';
const MODES: Mode[] = ['auth', 'plain'];
const MODE_TEXT: Record<Mode, string> = { auth: 'auth+TLS', plain: 'plain NATS' };

/** One NATS mode: its bus (connected as `keyhub serve` connects) and the relay publishing through it. */
interface Rig {
  mode: Mode;
  bus: HubBus;
  relay: OutboxRelay;
}

function median(runs: FanResult[]): FanResult {
  return [...runs].sort((a, b) => a.packagesPerSec - b.packagesPerSec)[Math.floor(runs.length / 2)];
}

type Actor = 'distribute' | 'relay';

/** Per-phase time accounting: who is waiting on the HSM, the database, JetStream. */
class Accounting {
  readonly als = new AsyncLocalStorage<Actor>();
  readonly hsm = new BusyTracker();
  readonly dbDistribute = new BusyTracker();
  readonly dbRelay = new BusyTracker();
  readonly publish = new BusyTracker();
  readonly relayBusy = new BusyTracker();
  readonly hsmCalls = new Map<string, number>();
  /** Time per statement kind (its first words), to see which write dominates. */
  readonly statements = new Map<string, { n: number; ms: number }>();
  lastDrainEnd = 0;
  drains = 0;
  /** Outbox rows the relay published and deleted (committed) since the pass began. */
  drainedRows = 0;
  /** Off for the measured passes: the proxies and AsyncLocalStorage cost the process CPU time. */
  on = false;

  reset(): void {
    for (const t of [this.hsm, this.dbDistribute, this.dbRelay, this.publish, this.relayBusy]) t.reset();
    this.hsmCalls.clear();
    this.statements.clear();
    this.drains = 0;
  }
}

interface FanResult {
  label: string;
  mode: Mode;
  packages: number;
  calls: number;
  totalMs: number;
  distributeMs: number;
  relayTailMs: number;
  packagesPerSec: number;
  breakdown: Record<string, number>;
  hsmCalls: Record<string, number>;
  statements: Record<string, { n: number; ms: number }>;
  drains: number;
  /** CPU time used during the run (until the outbox was seen empty) by this process, PostgreSQL and nats-server. */
  cpuMs: { node: number; nodeMain: number; postgres: number; nats: number };
  /** The instrumented re-run of the same scenario. */
  breakdownRun?: FanResult;
}

export async function runFanout(stage: StageRun): Promise<void> {
  const { rec, cleanup, ctx } = stage;
  const fx = await createHubFixture(stage, { nats: true });
  const { rt, config, logger } = fx;
  // The fixture's server is the plain one; the project's auth + TLS server is started beside it.
  let t = now();
  const auth = await startAuthNats(stage, fx);
  const natsConfig: Record<Mode, HubConfig> = { auth: auth.config, plain: { ...config, nats: { ...config.nats, auth: 'none', tls: false } } };
  const authSetupMs = now() - t;

  const ids = listenerIds(LISTENERS);
  t = now();
  await insertActiveListeners(fx, ids);
  const setup: Record<string, unknown> = { listeners: LISTENERS, insertListenersMs: now() - t, authNatsServerMs: authSetupMs };
  rec.details.setup = setup;
  say(`fanout: ${LISTENERS} active listeners with root KEKs inserted in ${((now() - t) / 1000).toFixed(1)} s`);

  const buses = {} as Record<Mode, HubBus>;
  for (const mode of MODES) {
    t = now();
    const bus = await connectHubBusAsServe(stage, fx, natsConfig[mode], MODE_TEXT[mode]);
    setup[`connect_${mode}_ms`] = now() - t;
    await bus.ensureStreams();
    t = now();
    // Approval creates each listener's durable consumer; done here as setup.
    await mapPool(ids, 8, (id) => bus.ensureListenerConsumer(id));
    setup[`createConsumers_${mode}_ms`] = now() - t;
    buses[mode] = bus;
  }

  // Two passes per scenario. The measured one runs the product as it is. The
  // instrumented re-run (fresh keys or listeners, same sizes) shows where the
  // time goes: a timing proxy around the HSM (a keyring over it, for a second
  // Distribute instance), the query runner, the bus publish and the relay
  // pass, attributed with AsyncLocalStorage. Async hooks slow the whole
  // process once enabled, so every measured pass runs before the first
  // instrumented one.
  const acc = new Accounting();
  const createKey = rt.container.resolve(CreateKey);
  const plainDistribute = rt.container.resolve(Distribute);
  const timedHsm = instrument<Hsm>(rt.hsm, acc.hsm, acc.hsmCalls);
  rt.container.register(TOKENS.keyring, { useValue: await HubKeyring.load(timedHsm) });
  const timedDistribute = rt.container.resolve(Distribute);
  const proto = PostgresQueryRunner.prototype as unknown as { query: (...args: unknown[]) => Promise<unknown> };
  const originalQuery = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const who = acc.als.getStore();
    if (who === undefined) return originalQuery.apply(this, args);
    const kind = `${who}: ${String(args[0]).replace(/\s+/g, ' ').trim().slice(0, 48)}`;
    const started = now();
    return (who === 'relay' ? acc.dbRelay : acc.dbDistribute)
      .track(() => originalQuery.apply(this, args))
      .finally(() => {
        const st = acc.statements.get(kind) ?? { n: 0, ms: 0 };
        st.n++;
        st.ms += now() - started;
        acc.statements.set(kind, st);
      });
  };
  cleanup.add('query runner instrumentation', () => {
    proto.query = originalQuery;
  });
  const drained = (n: number): number => {
    if (n > 0) {
      acc.lastDrainEnd = now();
      acc.drains++;
      acc.drainedRows += n;
    }
    return n;
  };
  const rig = (mode: Mode): Rig => {
    const bus = buses[mode];
    const originalPublish = bus.publish.bind(bus);
    bus.publish = (subject, payload, msgId) => (acc.on ? acc.publish.track(() => originalPublish(subject, payload, msgId)) : originalPublish(subject, payload, msgId));
    const relay = new OutboxRelay(rt.ds, bus, config.databaseUrl, config.delivery.relayBatch, logger);
    const originalDrain = relay.drainOnce.bind(relay);
    relay.drainOnce = () => (acc.on ? acc.als.run('relay', async () => drained(await acc.relayBusy.track(() => originalDrain()))) : originalDrain().then(drained));
    return { mode, bus, relay };
  };
  const rigs: Record<Mode, Rig> = { auth: rig('auth'), plain: rig('plain') };
  // One relay at a time, as in a hub: both would claim the same outbox. A relay keeps its cache of
  // listeners whose consumer it checked across a stop and start.
  let active: Rig | undefined;
  const use = async (r: Rig): Promise<void> => {
    if (active === r) return;
    await active?.relay.stop();
    active = undefined;
    await r.relay.start();
    active = r;
  };
  cleanup.add('outbox relay', () => active?.relay.stop());
  rec.details.relay = {
    batch: config.delivery.relayBatch,
    dbPoolSize: config.dbPoolSize,
    hsmSessions: config.hsm.sessions,
    nats: 'two nats-servers, one with the project auth + TLS and one plain; each bus connected as keyhub serve connects (hubNatsAccess, HubBus.connect); the account publisher of the auth connection runs throughout (as in serve: one query every 500 ms)',
  };

  const fan = async (r: Rig, scenario: string, calls: Array<{ keys: KeySelector[]; to: Destination[] }>, concurrency: number, instrumented = false): Promise<FanResult> => {
    await use(r);
    const label = `${scenario} [${MODE_TEXT[r.mode]}]`;
    acc.on = instrumented;
    const distribute = instrumented ? timedDistribute : plainDistribute;
    const profiler = process.env.KEYHUB_BENCH_PROFILE ? await startProfile() : undefined;
    await pollUntil('outbox empty before measuring', 60_000, 50, async () => (Number((await rt.ds.query('SELECT count(*) AS n FROM outbox'))[0].n) === 0 ? true : undefined));
    await sleep(200);
    acc.reset();
    acc.drainedRows = 0;
    const cpu0 = cpuByComponent();
    const t0 = now();
    let packages = 0;
    const push = () =>
      mapPool(calls, concurrency, async (c) => {
        const r = await distribute.execute({ keys: c.keys, to: c.to, actor: 'bench-fanout' });
        packages += r.queued.length;
      });
    await (instrumented ? acc.als.run('distribute', push) : push());
    const t1 = now();
    const distributeSnapshot = { hsm: acc.hsm.snapshot(), db: acc.dbDistribute.snapshot() };
    // Done when the relay has committed the deletion of as many rows as the calls queued. Watched
    // in memory: polling the outbox with count(*) every 50 ms took a visible share of PostgreSQL's
    // CPU from the work being measured. The time is that of the last pass's commit.
    await pollUntil(`${label}: all packages published`, 300_000, 2, async () => (acc.drainedRows >= packages ? true : undefined));
    const t2 = Math.max(t1, acc.lastDrainEnd);
    const totalMs = t2 - t0;
    const cpu1 = cpuByComponent();
    const left = Number((await rt.ds.query('SELECT count(*) AS n FROM outbox'))[0].n);
    if (left !== 0 || acc.drainedRows !== packages) throw new Error(`${label}: ${acc.drainedRows} rows published for ${packages} packages queued, ${left} left in the outbox`);
    const cpuMs = { node: cpu1.node - cpu0.node, nodeMain: cpu1.nodeMain - cpu0.nodeMain, postgres: cpu1.postgres - cpu0.postgres, nats: cpu1.nats - cpu0.nats };
    const result: FanResult = {
      label: scenario,
      mode: r.mode,
      packages,
      calls: calls.length,
      totalMs,
      distributeMs: t1 - t0,
      relayTailMs: t2 - t1,
      packagesPerSec: (packages * 1000) / totalMs,
      breakdown: {
        distributeHsmBusyMs: distributeSnapshot.hsm.busyMs,
        distributeDbBusyMs: distributeSnapshot.db.busyMs,
        distributeOtherMs: Math.max(0, t1 - t0 - distributeSnapshot.hsm.busyMs - distributeSnapshot.db.busyMs),
        distributeHsmMaxInFlight: distributeSnapshot.hsm.maxInFlight,
        distributeHsmMeanInFlight: distributeSnapshot.hsm.busyMs > 0 ? distributeSnapshot.hsm.callMs / distributeSnapshot.hsm.busyMs : 0,
        relayPublishMaxInFlight: acc.publish.snapshot().maxInFlight,
        relayBusyMs: acc.relayBusy.snapshot().busyMs,
        relayPublishAckWaitMs: acc.publish.snapshot().busyMs,
        relayDbBusyMs: acc.dbRelay.snapshot().busyMs,
      },
      hsmCalls: Object.fromEntries(acc.hsmCalls),
      statements: Object.fromEntries([...acc.statements].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => [k, { n: v.n, ms: Math.round(v.ms) }])),
      drains: acc.drains,
      cpuMs,
    };
    if (profiler) await profiler.stop(`fanout-${r.mode}-${scenario.replace(/[^a-z0-9]+/gi, '-')}${instrumented ? '-instrumented' : ''}`);
    const b = result.breakdown;
    b.relayOtherMs = Math.max(0, b.relayBusyMs - b.relayPublishAckWaitMs - b.relayDbBusyMs);
    if (!instrumented) {
      const c = (ms: number): string => `${((ms * 1000) / packages).toFixed(0)} us`;
      say(
        `fanout ${label}: ${packages} packages in ${(totalMs / 1000).toFixed(2)} s = ${result.packagesPerSec.toFixed(0)}/s (Distribute ${(result.distributeMs / 1000).toFixed(2)} s, relay tail ${(result.relayTailMs / 1000).toFixed(2)} s); ` +
          `CPU per package: node+HSM ${c(cpuMs.node)} (main thread ${c(cpuMs.nodeMain)}), postgres ${c(cpuMs.postgres)}, nats-server ${c(cpuMs.nats)}`,
      );
      return result;
    }
    say(
      `fanout ${label} (instrumented re-run): ${packages} packages in ${(totalMs / 1000).toFixed(2)} s = ${result.packagesPerSec.toFixed(0)}/s ` +
        `(distribute ${(result.distributeMs / 1000).toFixed(2)} s [HSM ${(b.distributeHsmBusyMs / 1000).toFixed(2)}, DB ${(b.distributeDbBusyMs / 1000).toFixed(2)}], ` +
        `relay tail ${(result.relayTailMs / 1000).toFixed(2)} s, relay busy ${(b.relayBusyMs / 1000).toFixed(2)} s [publish ${(b.relayPublishAckWaitMs / 1000).toFixed(2)}, DB ${(b.relayDbBusyMs / 1000).toFixed(2)}])`,
    );
    return result;
  };

  for (const mode of MODES) await createKey.execute({ name: `fanout-warmup-${mode}`, algorithm: 'AES-256', actor: 'bench' });
  for (const mode of MODES) for (let i = 1; i <= REPEATS; i++) await createKey.execute({ name: `fanout-1k-${mode}-${i}`, algorithm: 'AES-256', actor: 'bench' });
  await createKey.execute({ name: 'fanout-1k-b', algorithm: 'AES-256', actor: 'bench' });
  const all = ids.map((listenerId) => ({ listenerId }));
  t = now();
  const names = Array.from({ length: MANY_KEYS }, (_, i) => `fanout-many-${String(i + 1).padStart(4, '0')}`);
  await mapPool(names, 4, (name) => createKey.execute({ name, algorithm: 'AES-256', actor: 'bench' }));
  const createMs = now() - t;
  // Listener group g of ten: every pass of the many-keys scenario pushes to fresh listeners.
  const group = (g: number) => ids.slice(g * MANY_LISTENERS, (g + 1) * MANY_LISTENERS).map((listenerId) => ({ listenerId }));
  let nextGroup = 0;
  const manyLabel = `${MANY_KEYS} keys x ${MANY_LISTENERS} listeners`;
  const oneLabel = `1 key x ${LISTENERS} listeners`;

  // Warm-up, per mode: each relay's first sight of a listener checks its consumer (cached afterwards).
  const cold = {} as Record<Mode, FanResult>;
  for (const mode of MODES) cold[mode] = await fan(rigs[mode], 'warm-up (cold relay cache)', [{ keys: [{ name: `fanout-warmup-${mode}` }], to: all }], 1);
  // Each scenario is measured REPEATS times per mode, alternating scenarios and modes (the mode
  // that goes first swaps every round), and the median pass counts: single passes on this shared
  // 2-core machine vary by 20-30%, and its speed drifts from minute to minute.
  const ones: Record<Mode, FanResult[]> = { auth: [], plain: [] };
  const manys: Record<Mode, FanResult[]> = { auth: [], plain: [] };
  for (let i = 1; i <= REPEATS; i++) {
    for (const mode of i % 2 === 1 ? MODES : [...MODES].reverse()) {
      ones[mode].push(await fan(rigs[mode], oneLabel, [{ keys: [{ name: `fanout-1k-${mode}-${i}` }], to: all }], 1));
      manys[mode].push(await fan(rigs[mode], manyLabel, [{ keys: names.map((name) => ({ name })), to: group(nextGroup++) }], 1));
    }
  }
  const one = { auth: median(ones.auth), plain: median(ones.plain) };
  const many = { auth: median(manys.auth), plain: median(manys.plain) };
  // Where the time goes: the same sizes again, instrumented, with auth + TLS (what production runs).
  one.auth.breakdownRun = await fan(rigs.auth, oneLabel, [{ keys: [{ name: 'fanout-1k-b' }], to: all }], 1, true);
  many.auth.breakdownRun = await fan(rigs.auth, manyLabel, [{ keys: names.map((name) => ({ name })), to: group(nextGroup) }], 1, true);
  const passes = (rs: FanResult[]) => `median of ${rs.length} passes: ${rs.map((r) => r.packagesPerSec.toFixed(0)).join(', ')} pkg/s`;
  /** Median CPU time per package (us) of each component over the passes. */
  const cpuPer = (rs: FanResult[]) => {
    const m = (f: (c: FanResult['cpuMs']) => number): number => medianOf(rs.map((r) => (f(r.cpuMs) * 1000) / r.packages)) ?? NaN;
    return { node: m((c) => c.node), nodeMain: m((c) => c.nodeMain), postgres: m((c) => c.postgres), nats: m((c) => c.nats) };
  };
  const us = (v: number): string => v.toFixed(0);

  const limit = Math.min(ctx.limits.wrapSignPerPackage ?? NaN, ctx.limits.jetStreamPublish256 ?? NaN);
  const limitNote = Number.isFinite(limit)
    ? `bare limit ${limit.toFixed(0)} pkg/s = min(wrap+sign ${ctx.limits.wrapSignPerPackage?.toFixed(0)} (${ctx.limits.wrapSignHow}), JetStream 256 in flight ${ctx.limits.jetStreamPublish256?.toFixed(0)} (plain server))`
    : 'bare limits not measured in this run';
  const asyncLimit = Math.min(ctx.limits.wrapSignAsync4 ?? NaN, ctx.limits.jetStreamPublish256 ?? NaN);
  const cpu: Record<string, unknown> = {};
  for (const [key, r, runs] of [
    ['one_to_1000', one, ones],
    ['1000_to_10', many, manys],
  ] as const) {
    const a = r.auth;
    const ir = a.breakdownRun!;
    const b = ir.breakdown;
    rec.goal(`${key}_rate`, `${a.label}, auth+TLS: packages/s (Distribute call -> outbox empty)`, a.packagesPerSec, 'pkg/s', '>=', 3000, {
      note: `${a.packages} packages, ${a.calls} Distribute call${a.calls > 1 ? 's' : ''}; ${passes(runs.auth)}; NATS with the project's JWT auth and TLS, as production runs it`,
    });
    rec.metric(`${key}_rate_plain`, `${a.label}, plain NATS (no auth, no TLS): packages/s`, r.plain.packagesPerSec, 'pkg/s', {
      note: `${passes(runs.plain)}, alternating with the auth+TLS passes in the same run`,
    });
    const ca = cpuPer(runs.auth);
    const cp = cpuPer(runs.plain);
    cpu[key] = { authUsPerPackage: ca, plainUsPerPackage: cp };
    const tail = (rs: FanResult[]) => ((medianOf(rs.map((x) => x.relayTailMs)) ?? NaN) / 1000).toFixed(2);
    const paired = runs.auth.map((x, i) => (x.packagesPerSec / runs.plain[i].packagesPerSec).toFixed(2)).join(', ');
    rec.metric(`${key}_auth_vs_plain`, `${a.label}: rate with auth+TLS / rate with plain NATS`, a.packagesPerSec / r.plain.packagesPerSec, 'x', {
      digits: 3,
      note:
        `ratio of the medians; per round (the two passes side by side): ${paired}; CPU per package (median of passes), auth+TLS vs plain: node+HSM ${us(ca.node)} vs ${us(cp.node)} us (main thread ${us(ca.nodeMain)} vs ${us(cp.nodeMain)}), ` +
        `PostgreSQL ${us(ca.postgres)} vs ${us(cp.postgres)}, nats-server ${us(ca.nats)} vs ${us(cp.nats)} us; ` +
        `total ${us(ca.node + ca.postgres + ca.nats)} vs ${us(cp.node + cp.postgres + cp.nats)} us; relay tail after the call ${tail(runs.auth)} vs ${tail(runs.plain)} s`,
    });
    rec.goal(`${key}_ratio`, `${a.label}, auth+TLS: ratio to bare limit`, Number.isFinite(limit) ? a.packagesPerSec / limit : null, 'x', '>=', 0.5, { digits: 3, note: limitNote });
    if (Number.isFinite(asyncLimit)) {
      rec.metric(`${key}_ratio_async4`, `${a.label}, auth+TLS: ratio to wrap+sign with 4 async callers`, a.packagesPerSec / asyncLimit, 'x', {
        digits: 3,
        note: `${asyncLimit.toFixed(0)} pkg/s; the limit up to session 3, before synchronous calls on threads were measured faster; reference only`,
      });
    }
    rec.metric(`${key}_distribute_s`, `${a.label}, auth+TLS: Distribute call wall time`, a.distributeMs / 1000, 's', {
      digits: 2,
      note: `plain: ${(r.plain.distributeMs / 1000).toFixed(2)} s; instrumented re-run (auth+TLS): ${(ir.distributeMs / 1000).toFixed(2)} s, of which HSM busy ${(b.distributeHsmBusyMs / 1000).toFixed(2)} s (mean ${b.distributeHsmMeanInFlight.toFixed(2)}, max ${b.distributeHsmMaxInFlight} calls in flight; ${Object.entries(
        ir.hsmCalls,
      )
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}), DB busy ${(b.distributeDbBusyMs / 1000).toFixed(2)} s, rest (JS/encoding/locks) ${(b.distributeOtherMs / 1000).toFixed(2)} s`,
    });
    rec.metric(`${key}_relay_s`, `${a.label}, auth+TLS: relay after the last Distribute returned`, a.relayTailMs / 1000, 's', {
      digits: 2,
      note: `plain: ${(r.plain.relayTailMs / 1000).toFixed(2)} s; instrumented re-run (auth+TLS): ${ir.packagesPerSec.toFixed(0)} pkg/s; relay busy in total ${(b.relayBusyMs / 1000).toFixed(2)} s over ${ir.drains} passes: publish-ack wait (up to ${b.relayPublishMaxInFlight} in flight) ${(b.relayPublishAckWaitMs / 1000).toFixed(2)} s, DB ${(b.relayDbBusyMs / 1000).toFixed(2)} s, rest ${(b.relayOtherMs / 1000).toFixed(2)} s`,
    });
  }
  rec.metric('cold_rate', `${cold.auth.label}, auth+TLS: packages/s`, cold.auth.packagesPerSec, 'pkg/s', {
    note: `relay tail ${(cold.auth.relayTailMs / 1000).toFixed(2)} s (includes first-sight consumer checks); plain NATS: ${cold.plain.packagesPerSec.toFixed(0)} pkg/s, tail ${(cold.plain.relayTailMs / 1000).toFixed(2)} s`,
  });
  rec.metric('create_key_rate', 'CreateKey in process (4 concurrent), keys/s', (MANY_KEYS * 1000) / createMs, 'keys/s', { note: 'setup, reference only' });

  const mem = process.memoryUsage();
  const proc = procMemoryMb('self');
  ctx.rss.afterFanout = mb(mem.rss);
  rec.goal('rss_mb', 'bench process RSS after fan-out (in-process hub runtime)', mb(mem.rss), 'MB', '<', 500, {
    note: `heap used ${mb(mem.heapUsed).toFixed(0)} MB, peak RSS so far (VmHWM) ${proc.hwmMb?.toFixed(0)} MB; two buses and relays (auth+TLS and plain)`,
  });
  rec.details.runs = {
    cold,
    one,
    many,
    passes: {
      one: { auth: ones.auth.map((r) => r.packagesPerSec), plain: ones.plain.map((r) => r.packagesPerSec) },
      many: { auth: manys.auth.map((r) => r.packagesPerSec), plain: manys.plain.map((r) => r.packagesPerSec) },
    },
    cpuUsPerPackage: cpu,
  };
  rec.details.memory = { rssMb: mb(mem.rss), heapUsedMb: mb(mem.heapUsed), vmHwmMb: proc.hwmMb };
}

/**
 * KEYHUB_BENCH_PROFILE=1: a V8 CPU profile of each fan-out run (this process:
 * Distribute, relay, pkcs11js and nats client), written to
 * bench-results/<name>.cpuprofile for Chrome DevTools or speedscope.
 */
async function startProfile(): Promise<{ stop: (name: string) => Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const { writeFile, mkdir } = await import('node:fs/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    stop: async (name: string) => {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      const dir = path.resolve(__dirname, '../../../bench-results');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
      say(`profile written: bench-results/${name}.cpuprofile`);
    },
  };
}
