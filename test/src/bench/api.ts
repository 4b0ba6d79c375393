/**
 * Stage "api": a distribution through the operators' HTTPS API next to the
 * same distribution through the in-process call, in the same hub process,
 * in the same run. The hub is createApiHub's (the real buildApiServer on a
 * real SoftHSM2 token and PostgreSQL database) with a nats-server, a bus and
 * an outbox relay beside it, as `keyhub serve` runs them; 10 active
 * listeners (simulated, in the database, as in the fan-out stage).
 *
 * Each pass distributes 1,000 fresh keys to `all` (the 10 listeners, 10,000
 * packages) and is timed from the call (or the request) until the relay has
 * committed the publication of every package, watched in memory as the
 * fan-out stage does. The API pass is one `POST /v1/distributions` with
 * `{ keys: [{ name }, ...], to: 'all' }` as a key officer, sent by an
 * in-process node:https client with the hub CA pinned over a new TLS
 * connection; the in-process pass is `Distribute.execute` with the same
 * selection. Passes alternate, and each path's median of three counts.
 */
import 'reflect-metadata';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { HubBus } from '@keyhub/hub/dist/bus/hub-bus';
import { OutboxRelay } from '@keyhub/hub/dist/relay/outbox-relay';
import { createApiHub } from '../fixtures/api-hub';
import type { StageRun } from './context';
import { insertActiveListeners, listenerIds } from './hub-fixture';
import { BenchHttpsClient } from './https-client';
import { cpuByComponent, mapPool, mb, now, pollUntil, procMemoryMb, say, sleep } from './lib';

const KEYS = 1000;
const LISTENERS = 10;
const WARMUP_KEYS = 100;
/** Measured passes per path; the median counts. */
const REPEATS = 3;

type Path = 'api' | 'in-process';

interface Pass {
  path: Path;
  packages: number;
  totalMs: number;
  /** The call's wall time (API: request start to the answer's last byte). */
  callMs: number;
  relayTailMs: number;
  packagesPerSec: number;
  /** API: size of the answer. */
  responseBytes?: number;
  /** CPU time during the pass: this process (Node, HSM worker threads, API server and client), its main thread, PostgreSQL, nats-server. */
  cpuMs: { node: number; nodeMain: number; postgres: number; nats: number };
}

const median = (passes: Pass[]): Pass => [...passes].sort((a, b) => a.packagesPerSec - b.packagesPerSec)[Math.floor(passes.length / 2)];

export async function runApi(stage: StageRun): Promise<void> {
  const { rec, cleanup, ctx } = stage;
  const hub = await createApiHub(cleanup, { nats: true });
  const { fx } = hub;
  const { rt, config, logger } = fx;

  const ids = listenerIds(LISTENERS, 'api');
  let t = now();
  await insertActiveListeners(fx, ids);
  const bus = await HubBus.connect({ servers: config.nats.servers, name: 'keyhub-bench-hub' }, logger);
  cleanup.add('hub bus', () => bus.close());
  await bus.ensureStreams();
  // Approval creates each listener's durable consumer; done here as setup.
  await mapPool(ids, 4, (id) => bus.ensureListenerConsumer(id));
  const setup: Record<string, unknown> = { listeners: LISTENERS, listenersAndConsumersMs: now() - t };
  rec.details.setup = setup;

  // The relay, watched as in the fan-out stage: a pass ends when the relay has committed the
  // publication (the outbox rows' deletion) of as many packages as the pass queued.
  const relay = new OutboxRelay(rt.ds, bus, config.databaseUrl, config.delivery.relayBatch, logger);
  let drainedRows = 0;
  let lastDrainEnd = 0;
  const originalDrain = relay.drainOnce.bind(relay);
  relay.drainOnce = async () => {
    const n = await originalDrain();
    if (n > 0) {
      drainedRows += n;
      lastDrainEnd = now();
    }
    return n;
  };
  await relay.start();
  cleanup.add('outbox relay', () => relay.stop());
  rec.details.relay = { batch: config.delivery.relayBatch, dbPoolSize: config.dbPoolSize, hsmSessions: config.hsm.sessions };

  const officer = await hub.operator('bench-officer', ['key-officer']);
  // A new TCP connection and TLS handshake per request, as a `keyhub distribute` process makes.
  const client = new BenchHttpsClient(hub.url, hub.caPem, officer, false);

  // Fresh keys for every pass: `to: 'all'` reaches the same 10 listeners each time.
  const createKey = rt.container.resolve(CreateKey);
  const distribute = rt.container.resolve(Distribute);
  const keySet = (label: string, n: number): string[] => Array.from({ length: n }, (_, i) => `api-${label}-${String(i + 1).padStart(4, '0')}`);
  const sets = new Map<string, string[]>();
  sets.set('warm-in', keySet('warm-in', WARMUP_KEYS));
  sets.set('warm-api', keySet('warm-api', WARMUP_KEYS));
  for (let i = 1; i <= REPEATS; i++) {
    sets.set(`in-${i}`, keySet(`in-${i}`, KEYS));
    sets.set(`http-${i}`, keySet(`http-${i}`, KEYS));
  }
  t = now();
  for (const names of sets.values()) await createKey.executeMany(names.map((name) => ({ name, algorithm: 'AES-256', actor: 'bench' })));
  setup.createKeysMs = now() - t;
  say(`api: ${LISTENERS} listeners, ${[...sets.values()].reduce((a, s) => a + s.length, 0)} keys created in ${((now() - t) / 1000).toFixed(1)} s; API on ${hub.url}`);

  const pass = async (path: Path, names: string[], label: string): Promise<Pass> => {
    await pollUntil('outbox empty before measuring', 60_000, 50, async () => (Number((await rt.ds.query('SELECT count(*) AS n FROM outbox'))[0].n) === 0 ? true : undefined));
    await sleep(200);
    drainedRows = 0;
    const keys = names.map((name) => ({ name }));
    const cpu0 = cpuByComponent();
    const t0 = now();
    let packages: number;
    let t1: number;
    let responseBytes: number | undefined;
    if (path === 'api') {
      const r = await client.json<{ queued: unknown[]; skipped: unknown[] }>('POST', '/v1/distributions', { keys, to: 'all' });
      t1 = r.endedAt;
      packages = r.body.queued.length;
      responseBytes = r.bytes;
      if (r.body.skipped.length) throw new Error(`${label}: ${r.body.skipped.length} destinations skipped`);
    } else {
      const r = await distribute.execute({ keys, to: 'all', actor: 'bench-officer' });
      t1 = now();
      packages = r.queued.length;
    }
    if (packages !== names.length * LISTENERS) throw new Error(`${label}: ${packages} packages queued, expected ${names.length * LISTENERS}`);
    await pollUntil(`${label}: all packages published`, 120_000, 2, async () => (drainedRows >= packages ? true : undefined));
    const t2 = Math.max(t1, lastDrainEnd);
    const cpu1 = cpuByComponent();
    const left = Number((await rt.ds.query('SELECT count(*) AS n FROM outbox'))[0].n);
    if (left !== 0 || drainedRows !== packages) throw new Error(`${label}: ${drainedRows} rows published for ${packages} packages queued, ${left} left in the outbox`);
    const p: Pass = {
      path,
      packages,
      totalMs: t2 - t0,
      callMs: t1 - t0,
      relayTailMs: t2 - t1,
      packagesPerSec: (packages * 1000) / (t2 - t0),
      ...(responseBytes !== undefined ? { responseBytes } : {}),
      cpuMs: { node: cpu1.node - cpu0.node, nodeMain: cpu1.nodeMain - cpu0.nodeMain, postgres: cpu1.postgres - cpu0.postgres, nats: cpu1.nats - cpu0.nats },
    };
    const us = (ms: number): string => `${((ms * 1000) / packages).toFixed(0)} us`;
    say(
      `api ${label} (${path}): ${packages} packages in ${(p.totalMs / 1000).toFixed(2)} s = ${p.packagesPerSec.toFixed(0)}/s (call ${(p.callMs / 1000).toFixed(2)} s, relay tail ${(p.relayTailMs / 1000).toFixed(2)} s); ` +
        `CPU per package: node ${us(p.cpuMs.node)} (main thread ${us(p.cpuMs.nodeMain)}), postgres ${us(p.cpuMs.postgres)}, nats-server ${us(p.cpuMs.nats)}`,
    );
    return p;
  };

  // Warm-up of both paths (the relay's first sight of each listener, the route's first run), not counted.
  const warm = [await pass('in-process', sets.get('warm-in')!, 'warm-up'), await pass('api', sets.get('warm-api')!, 'warm-up')];
  const inProc: Pass[] = [];
  const viaApi: Pass[] = [];
  for (let i = 1; i <= REPEATS; i++) {
    // The order alternates, so drift in the machine's speed does not favour one path.
    if (i % 2 === 1) {
      inProc.push(await pass('in-process', sets.get(`in-${i}`)!, `pass ${i}`));
      viaApi.push(await pass('api', sets.get(`http-${i}`)!, `pass ${i}`));
    } else {
      viaApi.push(await pass('api', sets.get(`http-${i}`)!, `pass ${i}`));
      inProc.push(await pass('in-process', sets.get(`in-${i}`)!, `pass ${i}`));
    }
  }
  client.close();
  const a = median(viaApi);
  const b = median(inProc);
  const passes = (ps: Pass[]): string => `median of ${ps.length} passes: ${ps.map((p) => p.packagesPerSec.toFixed(0)).join(', ')} pkg/s`;
  const cpuNote = (p: Pass): string => {
    const us = (ms: number): string => ((ms * 1000) / p.packages).toFixed(0);
    return `CPU per package (us): node ${us(p.cpuMs.node)} (main thread ${us(p.cpuMs.nodeMain)}), postgres ${us(p.cpuMs.postgres)}, nats-server ${us(p.cpuMs.nats)}`;
  };
  const scenario = `${KEYS} keys x ${LISTENERS} listeners`;

  rec.goal('api_1000_to_10_rate', `${scenario} via POST /v1/distributions: packages/s (request -> all published)`, a.packagesPerSec, 'pkg/s', '>=', 3000, {
    note:
      `${a.packages} packages, one request {keys:[${KEYS} names], to:'all'} as a key officer; ${passes(viaApi)}. ` +
      `API server (buildApiServer), relay and HTTPS client (node:https, hub CA pinned, new TLS connection) all in the bench process; ` +
      `the ${(a.responseBytes! / 1e6).toFixed(1)} MB answer is parsed by the client in the same process`,
  });
  rec.metric('inproc_1000_to_10_rate', `${scenario} via Distribute.execute in process: packages/s (call -> all published)`, b.packagesPerSec, 'pkg/s', {
    note: `${b.packages} packages, the same selection (${KEYS} names, to 'all'), same hub process, same run; ${passes(inProc)}`,
  });
  rec.metric('api_ratio', `${scenario}: API / in-process (medians)`, a.packagesPerSec / b.packagesPerSec, 'x', {
    digits: 3,
    note: `per pair (run back to back, order alternating): ${viaApi.map((p, i) => (p.packagesPerSec / inProc[i].packagesPerSec).toFixed(2)).join(', ')}`,
  });
  rec.metric('api_request_s', `${scenario}: POST /v1/distributions request -> last byte of the answer`, a.callMs / 1000, 's', {
    digits: 2,
    note: `median pass; relay tail after the answer ${(a.relayTailMs / 1000).toFixed(2)} s; ${cpuNote(a)}`,
  });
  rec.metric('inproc_call_s', `${scenario}: Distribute.execute wall time`, b.callMs / 1000, 's', {
    digits: 2,
    note: `median pass; relay tail after the call ${(b.relayTailMs / 1000).toFixed(2)} s; ${cpuNote(b)}`,
  });

  const mem = process.memoryUsage();
  const proc = procMemoryMb('self');
  ctx.rss.afterApi = mb(mem.rss);
  rec.metric('rss_mb', 'bench process RSS after the API stage (hub runtime + API server)', mb(mem.rss), 'MB', {
    note: `heap used ${mb(mem.heapUsed).toFixed(0)} MB; peak RSS of the bench process so far (VmHWM) ${proc.hwmMb?.toFixed(0)} MB`,
  });
  rec.details.passes = { warm, api: viaApi, inProcess: inProc };
  rec.details.memory = { rssMb: mb(mem.rss), heapUsedMb: mb(mem.heapUsed), vmHwmMb: proc.hwmMb };
}
