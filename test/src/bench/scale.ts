/**
 * Stage "scale": a database the size of a large installation (100,000 key
 * versions, 1,000 listeners, ~51,000 distributions), filled with
 * generate_series, and the operator queries on it: in process (the domain
 * operations), over HTTPS (the real API server in this process, a node:https
 * client with the hub CA pinned, with and without keep-alive), and through
 * the `keyhub` client CLI (a fresh process each time, process start included).
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { DataSource } from 'typeorm';
import { KeyStatus } from '@keyhub/hub/dist/operations/keys/key-status';
import { ListListeners } from '@keyhub/hub/dist/operations/listeners/list-listeners';
import { makeTempDir, run } from '../env';
import { createApiHub } from '../fixtures/api-hub';
import { HUB_CLI } from '../harness/deployment';
import type { StageRun } from './context';
import { BenchHttpsClient, sampleLatency, type LatencySample } from './https-client';
import { mb, median, now, procMemoryMb, say } from './lib';

const KEYS = 25_000;
const VERSIONS_PER_KEY = 4;
const LISTENERS = 1000;
const SPREAD_DISTRIBUTIONS = 50_000;
const RUNS = 5;
const CLI_RUNS = 3;
/** Sequential HTTPS requests per latency sample (after WARMUP untimed ones). */
const HTTP_REQUESTS = 200;
const HTTP_WARMUP = 5;
export const STATUS_KEY = 'scale-key-000001';

/**
 * SQL for a UUID derived from `expr` (md5, with the version and variant
 * digits set): the API's schemas accept only RFC 9562 UUIDs.
 */
const uuidOf = (expr: string): string => `overlay(overlay(md5(${expr}) placing '4' from 13) placing '8' from 17)::uuid`;

/** 100,000 key versions, 1,000 listeners, ~51,000 distributions, by generate_series. */
export async function fillScaleData(ds: DataSource): Promise<void> {
  const identity = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
  const transport = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
  await ds.query(
    `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, hostname, requested_at, approved_at, approved_by, activated_at, last_seen_at)
     SELECT 'scale-' || lpad(g::text, 4, '0'), 'active', $1, $2, 'sha256', md5('fp1' || g) || md5('fp2' || g),
            '[{"name":"hsm","kind":"pkcs11"}]'::jsonb, 'scale-' || g || '.bench.invalid', now(), now(), 'bench', now(), now()
       FROM generate_series(1, $3::int) g`,
    [identity, transport, LISTENERS],
  );
  await ds.query(
    `INSERT INTO keys (id, name, algorithm, usages, exportable, state, current_version, created_by)
     SELECT ${uuidOf(`'key-' || g`)}, 'scale-key-' || lpad(g::text, 6, '0'), 'AES-256', ARRAY['encrypt', 'decrypt'], false, 'active', $2::int, 'bench-scale'
       FROM generate_series(1, $1::int) g`,
    [KEYS, VERSIONS_PER_KEY],
  );
  // 40-byte blobs: the size of an AES-256 key under KWP.
  await ds.query(
    `INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state)
     SELECT ${uuidOf(`'kv-' || g || '-' || v`)}, ${uuidOf(`'key-' || g`)}, v,
            decode(md5('w1-' || g || '-' || v) || md5('w2-' || g || '-' || v) || substr(md5('w3-' || g || '-' || v), 1, 16), 'hex'),
            32, substr(md5('kcv-' || g || '-' || v), 1, 6), CASE WHEN v = $2::int THEN 'active' ELSE 'deactivated' END
       FROM generate_series(1, $1::int) g, generate_series(1, $2::int) v`,
    [KEYS, VERSIONS_PER_KEY],
  );
  // The key whose status is asked for: its current version at every listener.
  await ds.query(
    `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, target_kcv, created_by, created_at, updated_at, confirmed_at, last_sent_at)
     SELECT ${uuidOf(`'d1-' || l`)}, ${uuidOf(`'kv-1-' || $2::int`)}, 'scale-' || lpad(l::text, 4, '0'), 'hsm',
            CASE WHEN l % 10 = 0 THEN 'sent' ELSE 'confirmed' END, 1, CASE WHEN l % 10 = 0 THEN NULL ELSE 'abcdef' END,
            'bench-scale', now(), now(), CASE WHEN l % 10 = 0 THEN NULL ELSE now() END, now()
       FROM generate_series(1, $1::int) l`,
    [LISTENERS, VERSIONS_PER_KEY],
  );
  // History spread over other keys and all listeners, with some backlog (queued/sent) and failures.
  await ds.query(
    `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, created_by, created_at, updated_at, confirmed_at)
     SELECT ${uuidOf(`'d2-' || g`)},
            ${uuidOf(`'kv-' || (2 + (g - 1) % ($2::int - 1)) || '-' || (1 + ((g - 1) / ($2::int - 1)) % $3::int)`)},
            'scale-' || lpad((1 + (g * 7919) % $4::int)::text, 4, '0'), 'hsm',
            CASE g % 20 WHEN 0 THEN 'queued' WHEN 1 THEN 'sent' WHEN 2 THEN 'failed' ELSE 'confirmed' END, 1,
            'bench-scale', now(), now(), CASE WHEN g % 20 > 2 THEN now() END
       FROM generate_series(1, $1::int) g`,
    [SPREAD_DISTRIBUTIONS, KEYS, VERSIONS_PER_KEY, LISTENERS],
  );
}

export async function runScale(stage: StageRun): Promise<void> {
  const { rec, cleanup, ctx } = stage;
  // The real API server on the hub runtime (no NATS: these routes only read the database).
  const hub = await createApiHub(cleanup);
  const { fx } = hub;
  const { ds } = fx.rt;

  const t = now();
  await fillScaleData(ds);
  // Statistics for the planner: ANALYZE is the table owner's (the runtime is the service role, which PostgreSQL would skip).
  await fx.asOwner('ANALYZE');
  const [counts] = await ds.query(
    `SELECT (SELECT count(*) FROM keys) AS keys, (SELECT count(*) FROM key_versions) AS key_versions,
            (SELECT count(*) FROM listeners) AS listeners, (SELECT count(*) FROM distributions) AS distributions,
            pg_size_pretty(pg_database_size(current_database())) AS db_size`,
  );
  rec.details.dataset = { ...counts, fillMs: now() - t };
  say(`scale: ${counts.key_versions} key versions, ${counts.listeners} listeners, ${counts.distributions} distributions (${counts.db_size}) in ${((now() - t) / 1000).toFixed(1)} s`);

  const status = fx.rt.container.resolve(KeyStatus);
  const list = fx.rt.container.resolve(ListListeners);
  const timeRuns = async (fn: () => Promise<unknown[]>): Promise<{ medianMs: number; runsMs: number[]; rows: number }> => {
    const warm = await fn();
    const runsMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const s = now();
      await fn();
      runsMs.push(now() - s);
    }
    return { medianMs: median(runsMs) ?? NaN, runsMs, rows: warm.length };
  };
  const st = await timeRuns(() => status.execute(STATUS_KEY));
  const stSmall = await timeRuns(() => status.execute('scale-key-012345'));
  const ll = await timeRuns(() => list.execute());
  rec.goal('status_ms', `KeyStatus.execute("${STATUS_KEY}") in process, median of ${RUNS}`, st.medianMs, 'ms', '<', 200, {
    note: `${st.rows} rows; runs ${st.runsMs.map((x) => x.toFixed(1)).join(', ')}`,
  });
  rec.goal('list_ms', `ListListeners.execute() in process, median of ${RUNS}`, ll.medianMs, 'ms', '<', 200, {
    note: `${ll.rows} rows with backlog counts; runs ${ll.runsMs.map((x) => x.toFixed(1)).join(', ')}`,
  });
  rec.metric('status_small_ms', 'KeyStatus of an undistributed key (4 versions), median', stSmall.medianMs, 'ms', { note: `${stSmall.rows} rows` });
  rec.details.inProcess = { status: st, statusUndistributed: stSmall, listListeners: ll };
  say(`scale: status ${st.medianMs.toFixed(1)} ms, listener list ${ll.medianMs.toFixed(1)} ms (in process)`);

  // Over HTTPS, as an operator's client sees it: the API server of this process, a key officer's token.
  const officer = await hub.operator('bench-officer', ['key-officer']);
  const rows =
    (key: string) =>
    (b: unknown): number =>
      ((b as Record<string, unknown[]>)[key] ?? []).length;
  const http: Record<string, LatencySample> = {};
  const keepAlive = new BenchHttpsClient(hub.url, hub.caPem, officer, true);
  const fresh = new BenchHttpsClient(hub.url, hub.caPem, officer, false);
  cleanup.add('HTTPS agent', () => keepAlive.close());
  const statusPath = `/v1/keys/${STATUS_KEY}/status`;
  http.statusKeepAlive = await sampleLatency(keepAlive, statusPath, HTTP_REQUESTS, HTTP_WARMUP, rows('rows'));
  http.statusNewConnection = await sampleLatency(fresh, statusPath, HTTP_REQUESTS, HTTP_WARMUP, rows('rows'));
  http.listenersKeepAlive = await sampleLatency(keepAlive, '/v1/listeners', HTTP_REQUESTS, HTTP_WARMUP, rows('listeners'));
  http.keysKeepAlive = await sampleLatency(keepAlive, '/v1/keys?limit=1000', HTTP_REQUESTS, HTTP_WARMUP, rows('keys'));
  keepAlive.close();
  rec.details.https = http;
  const ms = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(1));
  const sampleNote = (x: LatencySample, how: string): string =>
    `${x.requests} sequential requests ${how}; p50 ${ms(x.p50Ms)} ms, max ${ms(x.maxMs)} ms; ${x.rows} rows, ${(x.bytes / 1024).toFixed(0)} KiB per answer; client and server in the bench process`;
  const httpGoal = (key: string, label: string, x: LatencySample, how: string): void => {
    rec.goal(key, label, x.p99Ms, 'ms', '<=', 200, { note: sampleNote(x, how) });
  };
  httpGoal('https_status_p99_ms', `GET ${statusPath} over HTTPS, keep-alive: p99`, http.statusKeepAlive, `on one kept-alive connection (${http.statusKeepAlive.reused} reused it)`);
  httpGoal('https_status_new_conn_p99_ms', `GET ${statusPath} over HTTPS, new TLS connection each: p99`, http.statusNewConnection, 'each on a new TCP connection and TLS handshake');
  httpGoal('https_listeners_p99_ms', 'GET /v1/listeners over HTTPS, keep-alive: p99', http.listenersKeepAlive, 'on one kept-alive connection');
  httpGoal('https_keys_p99_ms', 'GET /v1/keys?limit=1000 over HTTPS, keep-alive: p99', http.keysKeepAlive, 'on one kept-alive connection');
  say(
    `scale: HTTPS p50/p99: status ${ms(http.statusKeepAlive.p50Ms)}/${ms(http.statusKeepAlive.p99Ms)} ms (keep-alive), ${ms(http.statusNewConnection.p50Ms)}/${ms(http.statusNewConnection.p99Ms)} ms (new connection); ` +
      `listeners ${ms(http.listenersKeepAlive.p50Ms)}/${ms(http.listenersKeepAlive.p99Ms)} ms; keys ${ms(http.keysKeepAlive.p50Ms)}/${ms(http.keysKeepAlive.p99Ms)} ms`,
  );

  // The client CLI, as an operator runs it: a fresh process each time, with nothing but the hub's
  // address, its CA (a PEM file) and a token in its environment.
  const dir = await makeTempDir('bench-scale-cli');
  cleanup.add('CLI home', () => dir.remove());
  const caPath = path.join(dir.path, 'keyhub-ca.pem');
  await writeFile(caPath, hub.caPem);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir.path, KEYHUB_ADDR: hub.url, KEYHUB_CACERT: caPath, KEYHUB_TOKEN: officer };
  const cli = async (args: string[]): Promise<{ medianMs: number; runsMs: number[]; lines: number }> => {
    const runsMs: number[] = [];
    let lines = 0;
    // One run more than timed: the first one warms the page cache.
    for (let i = -1; i < CLI_RUNS; i++) {
      const s = now();
      const r = await run(process.execPath, [HUB_CLI, ...args], { env, timeoutMs: 60_000 });
      if (i >= 0) runsMs.push(now() - s);
      if (r.code !== 0) throw new Error(`keyhub ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
      lines = r.stdout.trimEnd().split('\n').length;
    }
    return { medianMs: median(runsMs) ?? NaN, runsMs, lines };
  };
  const help = await cli(['--help']);
  const cliStatus = await cli(['status', STATUS_KEY]);
  const cliList = await cli(['listener', 'list']);
  rec.metric('cli_status_ms', `\`keyhub status ${STATUS_KEY}\` wall time, median of ${CLI_RUNS}`, cliStatus.medianMs, 'ms', {
    note: `${cliStatus.lines} output lines; the API client in a fresh process (start, TLS handshake, GET, schema check, table) against the API of the bench process`,
  });
  rec.metric('cli_list_ms', `\`keyhub listener list\` wall time, median of ${CLI_RUNS}`, cliList.medianMs, 'ms', { note: `${cliList.lines} output lines` });
  rec.metric('cli_help_ms', '`keyhub --help` wall time (node + module load only), median', help.medianMs, 'ms', { note: 'baseline for the two above' });
  rec.details.cli = { help, status: cliStatus, listenerList: cliList };

  const mem = process.memoryUsage();
  const proc = procMemoryMb('self');
  ctx.rss.afterScale = mb(mem.rss);
  rec.goal('rss_mb', 'bench process RSS after scale (in-process hub runtime + API server)', mb(mem.rss), 'MB', '<', 500, {
    note: `heap used ${mb(mem.heapUsed).toFixed(0)} MB; peak RSS of the bench process so far (VmHWM) ${proc.hwmMb?.toFixed(0)} MB`,
  });
  rec.details.memory = { rssMb: mb(mem.rss), heapUsedMb: mb(mem.heapUsed), vmHwmMb: proc.hwmMb };
}
