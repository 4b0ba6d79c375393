import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
// The fixture first: it loads the hub's composition root (and reflect-metadata) before any operation.
import { createHubFixture, type HubFixture } from '../bench/hub-fixture';
import { ScanAndHeal } from '@keyhub/hub/dist/operations/inventory/scan-and-heal';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

/**
 * A listener takes its inventory when it starts, and a compromise may be
 * called a moment later: the report then still shows the version usable,
 * while the hub already records it compromised. Judged against the new
 * state, that report was state drift, and the heal queued a second
 * compromise to the site while the first was in flight (found by the
 * benchmark: four sites, eight compromise commands). A command in flight,
 * or answered after the report was taken, makes the report say nothing
 * about that version at that target; one answered before it still does.
 */
describe('drift: a report older than a key command does not earn the command again (PostgreSQL, SoftHSM2)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  const keyId = randomUUID();
  const versionId = randomUUID();
  const commandId = randomUUID();
  const sql = (q: string, p: unknown[] = []) => fx.asOwner(q, p);

  before(async function () {
    this.timeout(90_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    await sql(
      `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, requested_at)
       VALUES ('site-cmd', 'active', '\\x00', '\\x00', 'sha1', 'x', '[{"name":"hsm","kind":"pkcs11"}]', now())`,
    );
    await sql(
      `INSERT INTO keys (id, name, algorithm, usages, exportable, state, current_version, created_by) VALUES ($1, 'drift-cmd', 'AES-256', '{encrypt,decrypt}', false, 'compromised', 1, 'test')`,
      [keyId],
    );
    await sql(`INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state) VALUES ($1, $2, 1, '\\x01', 32, 'abcdef', 'compromised')`, [versionId, keyId]);
    await sql(
      `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, created_by, created_at, updated_at, confirmed_at, target_kcv)
       VALUES (gen_random_uuid(), $1, 'site-cmd', 'hsm', 'confirmed', 1, 'test', now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour', 'abcdef')`,
      [versionId],
    );
    // The report was taken a minute ago, before the compromise reached the site: the key is still usable there.
    const reportId = randomUUID();
    await sql(`INSERT INTO listener_inventories (listener_id, report_id, taken_at, targets, items) VALUES ('site-cmd', $1, now() - interval '1 minute', '{hsm}', 1)`, [reportId]);
    await sql(
      `INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
       VALUES ('site-cmd', $1, 'hsm', replace($2::text, '-', '') || '00000001', $2::uuid, 1, 'k', 'abcdef', 'active')`,
      [reportId, keyId],
    );
    // The compromise, queued after the report was taken and not answered yet.
    await sql(
      `INSERT INTO key_commands (id, key_version_id, listener_id, target, action, urgent, state, subject, envelope, envelope_sha256, created_by, created_at, last_queued_at)
       VALUES ($1, $2, 'site-cmd', 'hsm', 'compromise', true, 'pending', 'keyhub.v1.urgent.site-cmd', '\\x00', '\\x00', 'test', now() - interval '30 seconds', now() - interval '30 seconds')`,
      [commandId, versionId],
    );
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const compromises = async (): Promise<number> =>
    ((await sql(`SELECT count(*)::int AS n FROM key_commands WHERE key_version_id = $1 AND action = 'compromise'`, [versionId])) as Array<{ n: number }>)[0].n;

  it('while the compromise is in flight: no finding, no second compromise', async () => {
    const r = await fx.rt.container.resolve(ScanAndHeal).execute(['site-cmd']);
    assert.equal(r.scan.counts.state_mismatch, 0);
    assert.equal(r.heal.commands, 0);
    assert.equal(await compromises(), 1);
  });

  it('once the compromise is answered after the report was taken: still none', async () => {
    await sql(`UPDATE key_commands SET state = 'confirmed', outcome = 'done', effect = 'usages_off', answered_at = now() - interval '10 seconds' WHERE id = $1`, [commandId]);
    const r = await fx.rt.container.resolve(ScanAndHeal).execute(['site-cmd']);
    assert.equal(r.scan.counts.state_mismatch, 0);
    assert.equal(await compromises(), 1);
  });

  it('a compromise answered before the report was taken: the usable key is drift, and healed with a compromise', async () => {
    await sql(`UPDATE key_commands SET created_at = now() - interval '3 minutes', answered_at = now() - interval '2 minutes' WHERE id = $1`, [commandId]);
    const r = await fx.rt.container.resolve(ScanAndHeal).execute(['site-cmd']);
    assert.equal(r.scan.counts.state_mismatch, 1);
    assert.equal(r.heal.commands, 1);
    assert.equal(await compromises(), 2);
  });
});
