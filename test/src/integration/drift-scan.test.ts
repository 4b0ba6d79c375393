import { strict as assert } from 'node:assert';
// The fixture first: it loads the hub's composition root (and reflect-metadata) before any operation.
import { createHubFixture, type HubFixture } from '../bench/hub-fixture';
import { ScanDrift } from '@keyhub/hub/dist/operations/inventory/scan-drift';
import { HubMetrics } from '@keyhub/hub/dist/observability/hub-metrics';
import { createMetricsRegistry } from '@keyhub/shared';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

const SITES = Number(process.env.KEYHUB_DRIFT_SITES ?? 1000);
const KEYS = Number(process.env.KEYHUB_DRIFT_KEYS ?? 100);

/**
 * The drift scan at the scale of issue 11's goal (1,000 sites holding 100
 * keys each: 100,000 distributions against 100,000 reported items), set
 * up in PostgreSQL directly (rows as confirmed deliveries and complete
 * inventories leave them). Checks that the scan is set-based and exact:
 * nothing on a clean fleet, exactly the planted drift after, each finding
 * audited once. Times are printed, not asserted (the benchmark owns them).
 */
describe('drift scan over 1,000 sites x 100 keys (PostgreSQL)', function () {
  this.timeout(300_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let scan: ScanDrift;

  before(async function () {
    this.timeout(240_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    scan = fx.rt.container.resolve(ScanDrift);
    const sql = (q: string, p: unknown[] = []) => fx.asOwner(q, p);
    await sql(
      `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, requested_at)
               SELECT 'site-' || lpad(g::text, 4, '0'), 'active', '\\x00', '\\x00', 'sha1', 'x', '[{"name":"hsm","kind":"pkcs11"}]', now() FROM generate_series(1, $1) g`,
      [SITES],
    );
    await sql(
      `INSERT INTO keys (id, name, algorithm, usages, exportable, state, current_version, created_by)
               SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'scan-key-' || g, 'AES-256', '{encrypt,decrypt}', false, 'active', 1, 'test' FROM generate_series(1, $1) g`,
      [KEYS],
    );
    await sql(
      `INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state)
               SELECT ('10000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 1, '\\x01', 32,
                      lpad(to_hex(g), 6, '0'), 'active' FROM generate_series(1, $1) g`,
      [KEYS],
    );
    await sql(`INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, created_by, created_at, updated_at, confirmed_at, target_kcv)
               SELECT gen_random_uuid(), v.id, l.id, 'hsm', 'confirmed', 1, 'test', now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour', v.kcv
                 FROM listeners l CROSS JOIN key_versions v`);
    await sql(`INSERT INTO listener_inventories (listener_id, report_id, taken_at, targets, items) SELECT id, gen_random_uuid(), now(), '{hsm}', $1 FROM listeners`, [KEYS]);
    await sql(`INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
               SELECT i.listener_id, i.report_id, 'hsm', replace(v.key_id::text, '-', '') || '00000001', v.key_id, 1, 'k', v.kcv, 'active'
                 FROM listener_inventories i CROSS JOIN key_versions v`);
    await sql('ANALYZE');
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    const r = await work();
    process.stderr.write(`      ${label}: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms\n`);
    return r;
  }

  it('a clean fleet: no finding', async () => {
    const r = await timed(`full scan, ${SITES * KEYS} items, clean`, () => scan.execute(null));
    assert.deepEqual(r.counts, { missing: 0, extra: 0, kcv_mismatch: 0, state_mismatch: 0 });
  });

  it('exactly the planted drift, each new finding audited once, a repeated scan adds nothing', async () => {
    const sql = (q: string) => fx.asOwner(q);
    // 100 sites lost a key, 100 report another KCV, 100 hold a planted object, 10 report a key disabled.
    await sql(`DELETE FROM inventory_items WHERE listener_id IN (SELECT id FROM listeners ORDER BY id LIMIT 100) AND version = 1 AND key_id = '00000000-0000-4000-8000-000000000001'`);
    await sql(`UPDATE inventory_items SET kcv = 'ffffff' WHERE listener_id IN (SELECT id FROM listeners ORDER BY id OFFSET 100 LIMIT 100) AND key_id = '00000000-0000-4000-8000-000000000002'`);
    await sql(`INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
               SELECT i.listener_id, i.report_id, 'hsm', 'deadbeef', NULL, NULL, 'planted', NULL, 'active' FROM listener_inventories i ORDER BY i.listener_id OFFSET 200 LIMIT 100`);
    await sql(`UPDATE inventory_items SET state = 'disabled' WHERE listener_id IN (SELECT id FROM listeners ORDER BY id OFFSET 300 LIMIT 10) AND key_id = '00000000-0000-4000-8000-000000000003'`);
    const audited = async () => Number(((await fx.asOwner(`SELECT count(*) AS n FROM audit_events WHERE action = 'drift.detected'`)) as Array<{ n: string }>)[0].n);
    const before = await audited();
    const r = await timed('full scan with 310 drifted items', () => scan.execute(null));
    assert.deepEqual(r.counts, { missing: 100, extra: 100, kcv_mismatch: 100, state_mismatch: 10 });
    assert.equal(r.fresh.length, 310);
    assert.equal((await audited()) - before, 310);
    const again = await timed('the same scan again', () => scan.execute(null));
    assert.equal(again.fresh.length, 0);
    assert.equal(await audited(), before + 310, 'a finding is audited once, not at every scan');
    const one = await timed('one site (as when its inventory arrives)', () => scan.execute(['site-0001']));
    assert.deepEqual(one.counts, { missing: 1, extra: 0, kcv_mismatch: 0, state_mismatch: 0 });
    // The metric reads the open findings from PostgreSQL at scrape time.
    const registry = createMetricsRegistry();
    new HubMetrics(registry, fx.rt.ds, fx.logger);
    const text = await registry.metrics();
    for (const [kind, n] of Object.entries({ missing: 100, extra: 100, kcv_mismatch: 100, state_mismatch: 10 })) {
      assert.match(text, new RegExp(`^keyhub_drift_items\\{kind="${kind}"\\} ${n}$`, 'm'));
    }
  });
});
