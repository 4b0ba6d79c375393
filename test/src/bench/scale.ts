/**
 * Stage "scale": a database the size of a large installation (100,000 key
 * versions, 1,000 listeners, ~51,000 distributions), filled with
 * generate_series, and the two operator queries on it — in process (the
 * domain operations) and through the CLI (process start included).
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { DataSource } from 'typeorm';
import { KeyStatus } from '@keyhub/hub/dist/operations/keys/key-status';
import { ListListeners } from '@keyhub/hub/dist/operations/listeners/list-listeners';
import { makeTempDir, run } from '../env';
import { HUB_CLI } from '../harness/deployment';
import type { StageRun } from './context';
import { createHubFixture, HUB_PIN_ENV } from './hub-fixture';
import { mb, median, now, procMemoryMb, say } from './lib';

const KEYS = 25_000;
const VERSIONS_PER_KEY = 4;
const LISTENERS = 1000;
const SPREAD_DISTRIBUTIONS = 50_000;
const RUNS = 5;
const CLI_RUNS = 3;
export const STATUS_KEY = 'scale-key-000001';

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
     SELECT md5('key-' || g)::uuid, 'scale-key-' || lpad(g::text, 6, '0'), 'AES-256', ARRAY['encrypt', 'decrypt'], false, 'active', $2::int, 'bench-scale'
       FROM generate_series(1, $1::int) g`,
    [KEYS, VERSIONS_PER_KEY],
  );
  // 40-byte blobs: the size of an AES-256 key under KWP.
  await ds.query(
    `INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state)
     SELECT md5('kv-' || g || '-' || v)::uuid, md5('key-' || g)::uuid, v,
            decode(md5('w1-' || g || '-' || v) || md5('w2-' || g || '-' || v) || substr(md5('w3-' || g || '-' || v), 1, 16), 'hex'),
            32, substr(md5('kcv-' || g || '-' || v), 1, 6), CASE WHEN v = $2::int THEN 'active' ELSE 'deactivated' END
       FROM generate_series(1, $1::int) g, generate_series(1, $2::int) v`,
    [KEYS, VERSIONS_PER_KEY],
  );
  // The key whose status is asked for: its current version at every listener.
  await ds.query(
    `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, target_kcv, created_by, created_at, updated_at, confirmed_at, last_sent_at)
     SELECT md5('d1-' || l)::uuid, md5('kv-1-' || $2::int)::uuid, 'scale-' || lpad(l::text, 4, '0'), 'hsm',
            CASE WHEN l % 10 = 0 THEN 'sent' ELSE 'confirmed' END, 1, CASE WHEN l % 10 = 0 THEN NULL ELSE 'abcdef' END,
            'bench-scale', now(), now(), CASE WHEN l % 10 = 0 THEN NULL ELSE now() END, now()
       FROM generate_series(1, $1::int) l`,
    [LISTENERS, VERSIONS_PER_KEY],
  );
  // History spread over other keys and all listeners, with some backlog (queued/sent) and failures.
  await ds.query(
    `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, created_by, created_at, updated_at, confirmed_at)
     SELECT md5('d2-' || g)::uuid,
            md5('kv-' || (2 + (g - 1) % ($2::int - 1)) || '-' || (1 + ((g - 1) / ($2::int - 1)) % $3::int))::uuid,
            'scale-' || lpad((1 + (g * 7919) % $4::int)::text, 4, '0'), 'hsm',
            CASE g % 20 WHEN 0 THEN 'queued' WHEN 1 THEN 'sent' WHEN 2 THEN 'failed' ELSE 'confirmed' END, 1,
            'bench-scale', now(), now(), CASE WHEN g % 20 > 2 THEN now() END
       FROM generate_series(1, $1::int) g`,
    [SPREAD_DISTRIBUTIONS, KEYS, VERSIONS_PER_KEY, LISTENERS],
  );
  await ds.query('ANALYZE');
}

export async function runScale(stage: StageRun): Promise<void> {
  const { rec, cleanup, ctx } = stage;
  const fx = await createHubFixture(stage, { nats: false });
  const { ds } = fx.rt;

  const t = now();
  await fillScaleData(ds);
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
  rec.goal('status_ms', `KeyStatus.execute("${STATUS_KEY}") in process, median of ${RUNS}`, st.medianMs, 'ms', '<', 200, { note: `${st.rows} rows; runs ${st.runsMs.map((x) => x.toFixed(1)).join(', ')}` });
  rec.goal('list_ms', `ListListeners.execute() in process, median of ${RUNS}`, ll.medianMs, 'ms', '<', 200, { note: `${ll.rows} rows with backlog counts; runs ${ll.runsMs.map((x) => x.toFixed(1)).join(', ')}` });
  rec.metric('status_small_ms', 'KeyStatus of an undistributed key (4 versions), median', stSmall.medianMs, 'ms', { note: `${stSmall.rows} rows` });
  rec.details.inProcess = { status: st, statusUndistributed: stSmall, listListeners: ll };
  say(`scale: status ${st.medianMs.toFixed(1)} ms, listener list ${ll.medianMs.toFixed(1)} ms (in process)`);

  // The CLI, as an operator runs it: a fresh process each time.
  const dir = await makeTempDir('bench-scale-cli');
  cleanup.add('CLI config dir', () => dir.remove());
  const configPath = path.join(dir.path, 'hub.json');
  await writeFile(configPath, JSON.stringify({ ...fx.config }));
  const token = fx.soft.tokens[0];
  const env = { ...process.env, ...fx.soft.env, [HUB_PIN_ENV]: token.pin, KEYHUB_CONFIG: configPath, KEYHUB_ACTOR: 'bench', KEYHUB_LOG_LEVEL: 'warn' };
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
  rec.metric('cli_status_ms', `\`keyhub status ${STATUS_KEY}\` wall time, median of ${CLI_RUNS}`, cliStatus.medianMs, 'ms', { note: `${cliStatus.lines} output lines; process start + HSM/DB open included` });
  rec.metric('cli_list_ms', `\`keyhub listener list\` wall time, median of ${CLI_RUNS}`, cliList.medianMs, 'ms', { note: `${cliList.lines} output lines` });
  rec.metric('cli_help_ms', '`keyhub --help` wall time (node + module load only), median', help.medianMs, 'ms', { note: 'baseline for the two above' });
  rec.details.cli = { help, status: cliStatus, listenerList: cliList };

  const mem = process.memoryUsage();
  const proc = procMemoryMb('self');
  ctx.rss.afterScale = mb(mem.rss);
  rec.goal('rss_mb', 'bench process RSS after scale (in-process hub runtime)', mb(mem.rss), 'MB', '<', 500, { note: `heap used ${mb(mem.heapUsed).toFixed(0)} MB; peak RSS of the bench process so far (VmHWM) ${proc.hwmMb?.toFixed(0)} MB` });
  rec.details.memory = { rssMb: mb(mem.rss), heapUsedMb: mb(mem.heapUsed), vmHwmMb: proc.hwmMb };
}
