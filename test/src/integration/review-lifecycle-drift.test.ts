import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
// The fixture first: it loads the hub's composition root (and reflect-metadata) before any operation.
import { createHubFixture, type HubFixture } from '../bench/hub-fixture';
import type { DriftFinding } from '@keyhub/hub/dist/domain/drift';
import { HealDrift } from '@keyhub/hub/dist/operations/inventory/heal-drift';
import { RecordInventory } from '@keyhub/hub/dist/operations/inventory/record-inventory';
import { MESSAGE_TYPES, type InventoryReport } from '@keyhub/protocol';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

/**
 * Review of issue 11 (drift healing, destroyExtras): an "extra" finding
 * names only (key, version) at a target, and the destroy it may earn is
 * carried out by identity (every object of the version in the token) and
 * tombstones the version for the whole site. So an extra copy of a version
 * the site legitimately holds (a planted object with the same CKA_ID, or one
 * counted under another target of the same token) must never earn a
 * destroy: it would destroy the real key and bar it from ever coming back.
 * An extra version the site does not hold still does (the feature works).
 */
describe('review: drift heal never destroys a version the site holds (PostgreSQL, SoftHSM2)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  const keyId = randomUUID();
  const versionId = randomUUID();
  const placementId = randomUUID();

  before(async function () {
    this.timeout(90_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    const sql = (q: string, p: unknown[] = []) => fx.asOwner(q, p);
    await sql(
      `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, requested_at)
       SELECT id, 'active', '\\x00', '\\x00', 'sha1', 'x', '[{"name":"hsm","kind":"pkcs11"},{"name":"hsm2","kind":"pkcs11"}]', now() FROM unnest($1::text[]) id`,
      [['site-holds', 'site-other']],
    );
    await sql(
      `INSERT INTO keys (id, name, algorithm, usages, exportable, state, current_version, created_by) VALUES ($1, 'review-extra', 'AES-256', '{encrypt,decrypt}', false, 'active', 1, 'test')`,
      [keyId],
    );
    await sql(`INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state) VALUES ($1, $2, 1, '\\x01', 32, 'abcdef', 'active')`, [versionId, keyId]);
    // site-holds has the version at target hsm (confirmed); site-other holds nothing.
    await sql(
      `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, created_by, created_at, updated_at, confirmed_at, target_kcv)
       VALUES (gen_random_uuid(), $1, 'site-holds', 'hsm', 'confirmed', 1, 'test', now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour', 'abcdef')`,
      [versionId],
    );
    const operatorId = randomUUID();
    await sql(`INSERT INTO operators (id, name, roles, state, created_by) VALUES ($1, 'review-officer', '{key-officer}', 'active', 'test')`, [operatorId]);
    // A placement of the key at hsm2 of both sites that says destroyExtras.
    await sql(
      `INSERT INTO placements (id, name, key_id, listener_ids, targets, future_versions, future_sites, destroy_extras, version, created_by, created_by_operator)
       VALUES ($1, 'review-extras', $2, '{site-holds,site-other}', '{hsm2}', true, true, true, 1, 'review-officer', $3)`,
      [placementId, keyId, operatorId],
    );
    await sql(`INSERT INTO placement_sites (placement_id, listener_id, target, key_version_id) SELECT $1, l, 'hsm2', $2 FROM unnest($3::text[]) l`, [
      placementId,
      versionId,
      ['site-holds', 'site-other'],
    ]);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  function extra(listenerId: string): DriftFinding {
    return {
      listenerId,
      target: 'hsm2',
      item: `${keyId}/v1`,
      kind: 'extra',
      keyId,
      version: 1,
      keyVersionId: null,
      distributionId: null,
      objectId: `${keyId.replace(/-/g, '')}00000001`,
      label: 'planted',
      expectedKcv: null,
      reportedKcv: '000000',
      expectedState: null,
      reportedState: 'active',
    };
  }

  async function destroysTo(listenerId: string): Promise<number> {
    const [row] = (await fx.asOwner(`SELECT count(*)::int AS n FROM key_commands WHERE listener_id = $1 AND action = 'destroy'`, [listenerId])) as Array<{ n: number }>;
    return row.n;
  }

  it('an extra copy of a version the site holds is reported, not destroyed', async () => {
    const heal = fx.rt.container.resolve(HealDrift);
    const r = await heal.execute([extra('site-holds')]);
    assert.equal(r.commands, 0, 'no destroy for a version the site holds');
    assert.equal(r.reportedOnly, 1);
    assert.equal(await destroysTo('site-holds'), 0);
  });

  it('a heal from a scan older than an operator change does not undo it (no resume of a version suspended since)', async () => {
    // The scan saw the version active at the hub and disabled at the site; the operator has suspended it since.
    await fx.asOwner(`UPDATE key_versions SET state = 'suspended' WHERE id = $1`, [versionId]);
    const finding: DriftFinding = { ...extra('site-holds'), target: 'hsm', kind: 'state_mismatch', keyVersionId: versionId, expectedState: 'active', reportedState: 'disabled' };
    const heal = fx.rt.container.resolve(HealDrift);
    assert.equal((await heal.execute([finding])).commands, 0, 'a resume now would re-enable a suspended key at the site');
    const [{ n }] = (await fx.asOwner(`SELECT count(*)::int AS n FROM key_commands WHERE key_version_id = $1 AND action = 'resume'`, [versionId])) as Array<{ n: number }>;
    assert.equal(n, 0);
    // A finding that still matches the recorded state is healed.
    assert.equal((await heal.execute([{ ...finding, expectedState: 'suspended', reportedState: 'active' }])).commands, 1);
    await fx.asOwner(`UPDATE key_versions SET state = 'active' WHERE id = $1`, [versionId]);
  });

  it('an extra version the site does not hold is still destroyed under destroyExtras', async () => {
    const heal = fx.rt.container.resolve(HealDrift);
    const r = await heal.execute([extra('site-other')]);
    assert.equal(r.commands, 1);
    assert.equal(await destroysTo('site-other'), 1);
  });
});

/**
 * Review of issue 11 (inventory): a listener's report comes in parts, and
 * the hub keeps parts until the report completes. Without a bound on
 * reports in progress, a site could send part 1 of ever new reports (each
 * valid, none completing) and pile rows up in the hub's database. Only the
 * newest report in progress is kept: an older one's part is refused, a
 * newer one drops the unfinished older one.
 */
describe('review: unfinished inventory reports do not pile up (PostgreSQL)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let record: RecordInventory;

  before(async function () {
    this.timeout(90_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    record = fx.rt.container.resolve(RecordInventory);
    await fx.asOwner(
      `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, requested_at)
       VALUES ('site-inv', 'active', '\\x00', '\\x00', 'sha1', 'x', '[{"name":"hsm","kind":"pkcs11"}]', now())`,
    );
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  function part(takenAt: Date, reportId: string = randomUUID()): InventoryReport {
    return {
      type: MESSAGE_TYPES.inventory,
      id: randomUUID(),
      listenerId: 'site-inv',
      issuedAt: takenAt.toISOString(),
      reportId,
      takenAt: takenAt.toISOString(),
      part: 1,
      of: 2,
      targets: ['hsm'],
      items: Array.from({ length: 50 }, (_, i) => ({ target: 'hsm', objectId: i.toString(16).padStart(8, '0'), label: `planted-${i}`, state: 'active' as const })),
    };
  }

  async function stored(): Promise<{ parts: number; items: number }> {
    const [row] = (await fx.asOwner(
      `SELECT (SELECT count(*)::int FROM inventory_parts WHERE listener_id = 'site-inv') AS parts, (SELECT count(*)::int FROM inventory_items WHERE listener_id = 'site-inv') AS items`,
    )) as Array<{ parts: number; items: number }>;
    return row;
  }

  it('twenty unfinished reports leave one report in progress, not twenty', async () => {
    const t0 = Date.now() - 60_000;
    for (let i = 0; i < 20; i++) assert.equal(await record.execute(part(new Date(t0 + i * 1000))), 'stored');
    assert.deepEqual(await stored(), { parts: 1, items: 50 });
  });

  it('a part of a report older than the one in progress is refused and stores nothing', async () => {
    await assert.rejects(record.execute(part(new Date(Date.now() - 120_000))), (e: { code?: string }) => e.code === 'INVENTORY_STALE');
    assert.deepEqual(await stored(), { parts: 1, items: 50 });
  });

  it('the report in progress still completes', async () => {
    const [row] = (await fx.asOwner(`SELECT report_id, taken_at FROM inventory_parts WHERE listener_id = 'site-inv'`)) as Array<{ report_id: string; taken_at: Date }>;
    const last = { ...part(row.taken_at, row.report_id), part: 2 };
    assert.equal(await record.execute(last), 'complete');
  });
});
