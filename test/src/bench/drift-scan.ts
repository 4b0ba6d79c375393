/**
 * The lifecycle stage's drift scan: 1,000 sites of its own each holding 100 keys
 * (100,000 confirmed distributions) and each with a complete inventory of
 * 100 items, filled with generate_series, with some drift planted (a key
 * missing at 1% of the sites' items, one extra object at 10% of the sites, a
 * KCV mismatch at 0.5%). Times ScanDrift over every site (what the reconcile
 * job runs), next to the bare cost of reading the same rows it compares.
 */
import { ScanDrift } from '@keyhub/hub/dist/operations/inventory/scan-drift';
import type { StageRun } from './context';
import { listenerIds, type HubFixture } from './hub-fixture';
import { median, now, say } from './lib';

const SITES = 1000;
const KEYS = 100;
const RUNS = 3;
const uuidOf = (expr: string): string => `overlay(overlay(md5(${expr}) placing '4' from 13) placing '8' from 17)::uuid`;

async function fill(fx: HubFixture, ids: string[]): Promise<{ missing: number; extra: number; kcv: number }> {
  const { ds } = fx.rt;
  // Sites of their own (no KEKs needed: nothing is sent to them), so the stage's other keys are not part of the comparison.
  await ds.query(
    `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, hostname, requested_at, approved_at, approved_by, activated_at, last_seen_at)
     SELECT l, 'active', decode(md5(l), 'hex'), decode(md5('t' || l), 'hex'), 'sha256', md5('fp1' || l) || md5('fp2' || l),
            '[{"name":"hsm","kind":"pkcs11"}]'::jsonb, l || '.bench.invalid', now(), now(), 'bench', now(), now()
       FROM unnest($1::text[]) l`,
    [ids],
  );
  await ds.query(
    `INSERT INTO keys (id, name, algorithm, usages, exportable, state, current_version, created_by)
     SELECT ${uuidOf(`'drift-key-' || g`)}, 'drift-key-' || lpad(g::text, 3, '0'), 'AES-256', ARRAY['encrypt', 'decrypt'], false, 'active', 1, 'bench-drift'
       FROM generate_series(1, $1::int) g`,
    [KEYS],
  );
  await ds.query(
    `INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state)
     SELECT ${uuidOf(`'drift-kv-' || g`)}, ${uuidOf(`'drift-key-' || g`)}, 1, decode(md5('w' || g) || md5('x' || g) || substr(md5('y' || g), 1, 16), 'hex'),
            32, substr(md5('kcv-' || g), 1, 6), 'active'
       FROM generate_series(1, $1::int) g`,
    [KEYS],
  );
  // Confirmed an hour before the inventories were taken: settled, so drift counts.
  await ds.query(
    `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, target_kcv, created_by, created_at, updated_at, confirmed_at, last_sent_at)
     SELECT gen_random_uuid(), ${uuidOf(`'drift-kv-' || g`)}, l, 'hsm', 'confirmed', 1, substr(md5('kcv-' || g), 1, 6), 'bench-drift',
            now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour'
       FROM unnest($1::text[]) l, generate_series(1, $2::int) g`,
    [ids, KEYS],
  );
  await ds.query(
    `INSERT INTO listener_inventories (listener_id, report_id, taken_at, targets, items)
     SELECT l, ${uuidOf(`'drift-report-' || l`)}, now(), ARRAY['hsm'], $2::int FROM unnest($1::text[]) l`,
    [ids, KEYS],
  );
  // Every site reports its keys, except every 100th (site, key) pair (missing); every 200th of the
  // rest reports another KCV (kcv_mismatch); every 10th site also holds an object nobody sent (extra).
  await ds.query(
    `INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
     SELECT l, ${uuidOf(`'drift-report-' || l`)}, 'hsm', md5('obj-' || l || '-' || g), ${uuidOf(`'drift-key-' || g`)}, 1, 'keyhub.drift-key-' || g || '.v1',
            CASE WHEN (n * $2::int + g) % 200 = 7 THEN 'ffffff' ELSE substr(md5('kcv-' || g), 1, 6) END, 'active'
       FROM unnest($1::text[]) WITH ORDINALITY AS s(l, n), generate_series(1, $2::int) g
      WHERE (n * $2::int + g) % 100 <> 3`,
    [ids, KEYS],
  );
  await ds.query(
    `INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
     SELECT l, ${uuidOf(`'drift-report-' || l`)}, 'hsm', md5('planted-' || l), NULL, NULL, 'planted', NULL, 'active'
       FROM unnest($1::text[]) WITH ORDINALITY AS s(l, n) WHERE n % 10 = 0`,
    [ids],
  );
  const [c] = await ds.query(
    `SELECT count(*) FILTER (WHERE (n * $2::int + g) % 100 = 3) AS missing,
            count(*) FILTER (WHERE (n * $2::int + g) % 100 <> 3 AND (n * $2::int + g) % 200 = 7) AS kcv
       FROM unnest($1::text[]) WITH ORDINALITY AS s(l, n), generate_series(1, $2::int) g`,
    [ids, KEYS],
  );
  return { missing: Number(c.missing), extra: Math.floor(ids.length / 10), kcv: Number(c.kcv) };
}

export async function runDriftScan(stage: StageRun, fx: HubFixture): Promise<void> {
  const { rec } = stage;
  const ids = listenerIds(SITES, 'drift');
  const { ds } = fx.rt;
  let t = now();
  const planted = await fill(fx, ids);
  await ds.query('ANALYZE');
  say(`lifecycle: drift data (${ids.length} sites x ${KEYS} keys) filled in ${((now() - t) / 1000).toFixed(1)} s`);
  const scan = fx.rt.container.resolve(ScanDrift);
  const runs: number[] = [];
  const bare: number[] = [];
  let first: Awaited<ReturnType<ScanDrift['execute']>> | undefined;
  for (let i = 0; i < RUNS; i++) {
    // The bare reference: the rows the scan compares, read into this process without comparing them.
    t = now();
    await ds.query(`SELECT d.listener_id, d.target, v.key_id, v.version, v.kcv FROM distributions d JOIN key_versions v ON v.id = d.key_version_id WHERE d.listener_id = ANY($1::text[])`, [ids]);
    await ds.query(`SELECT listener_id, target, object_id, key_id, version, kcv, state FROM inventory_items WHERE listener_id = ANY($1::text[])`, [ids]);
    bare.push(now() - t);
    t = now();
    const r = await scan.execute(null);
    runs.push(now() - t);
    first ??= r;
  }
  const counts = first!.counts;
  const ok = counts.missing === planted.missing && counts.extra === planted.extra && counts.kcv_mismatch === planted.kcv;
  say(
    `lifecycle: drift scan ${runs.map((ms) => ms.toFixed(0)).join(', ')} ms (first: ${first!.fresh.length} new findings; missing ${counts.missing}/${planted.missing}, ` +
      `extra ${counts.extra}/${planted.extra}, kcv ${counts.kcv_mismatch}/${planted.kcv}); bare read ${bare.map((ms) => ms.toFixed(0)).join(', ')} ms`,
  );
  if (!ok) throw new Error(`drift scan found ${JSON.stringify(counts)}, planted ${JSON.stringify(planted)}`);
  const m = median(runs) ?? NaN;
  const b = median(bare) ?? NaN;
  rec.goal('drift_scan_1000x100_ms', `drift scan over ${ids.length} sites' inventories of ${KEYS} keys each`, m, 'ms', '<=', 5000, {
    note: `median of ${RUNS} (the first records ${first!.fresh.length} findings and their audit events, the later ones only move sightings): ${runs.map((ms) => ms.toFixed(0)).join(', ')} ms; every planted finding found`,
  });
  rec.metric('drift_scan_vs_bare_read', 'the same as a ratio: bare read of the compared rows / scan', b / m, 'x', { digits: 2, note: `bare read median ${b.toFixed(0)} ms` });
}
