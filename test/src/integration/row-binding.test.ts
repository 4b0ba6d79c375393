/**
 * The database attacks of issue 10, rerun: someone who can write to the
 * hub's database, and nothing else, tries to get a root KEK or a key where it
 * does not belong. Each attempt must fail with a stable code before anything
 * is unwrapped or issued, and leave no row, package, outbox entry or token
 * object behind. Against the real hub code, PostgreSQL and a SoftHSM2 token.
 */
import { strict as assert } from 'node:assert';
import { nkeys } from 'nats';
import { generateKeyPairSync } from 'node:crypto';
import { enrollmentFingerprint } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { ApproveListener } from '@keyhub/hub/dist/operations/listeners/approve-listener';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { initHub } from '@keyhub/hub/dist/operations/hub/init-hub';
import { openHubRuntime } from '@keyhub/hub/dist/container';
import { ROW_MAC_BACKFILLED_LABEL } from '@keyhub/hub/dist/crypto/hub-keyring';
import { insertRows } from '@keyhub/hub/dist/store/queries/bulk';
import { createHubFixture, insertActiveListeners, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

describe('database attacks: rows bound to what they are, fingerprints recomputed', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let distribute: Distribute;
  let createKey: CreateKey;

  before(async () => {
    const stage = { cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext };
    fx = await createHubFixture(stage, { nats: false });
    await insertActiveListeners(fx, ['site-a', 'site-b']);
    distribute = fx.rt.container.resolve(Distribute);
    createKey = fx.rt.container.resolve(CreateKey);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const sql = <T = Record<string, unknown>>(q: string, params: unknown[] = []): Promise<T[]> => fx.rt.ds.query(q, params);

  /** What an attempt must leave unchanged: distributions, packages, outbox, audit, keys, and the token's session objects. */
  async function snapshot(): Promise<Record<string, number>> {
    const [row] = await sql<Record<string, number>>(
      `SELECT (SELECT count(*)::int FROM distributions) AS distributions, (SELECT count(*)::int FROM packages) AS packages,
              (SELECT count(*)::int FROM outbox) AS outbox, (SELECT count(*)::int FROM keks) AS keks`,
    );
    return { ...row, sessionObjects: (await fx.rt.hsm.findKeys({ token: false })).length };
  }

  const refusedWith = (code: string) => (e: unknown) => KeyhubError.is(e, code as never);

  it("site A's root-KEK blob put into a key version's row and pushed to site B: ROW_MAC_INVALID before any unwrap, nothing queued", async () => {
    await createKey.execute({ name: 'bait', algorithm: 'AES-256', actor: 'test' });
    const [kek] = await sql<{ wrapped: Buffer; kcv: string; mac: Buffer }>(`SELECT wrapped, kcv, mac FROM keks WHERE listener_id = 'site-a'`);
    const before = await snapshot();
    // The blob, its KCV, and even the KEK row's own MAC: the MAC binds the row's kind, id and owner too.
    for (const mac of [null, kek.mac]) {
      await sql(`UPDATE key_versions v SET wrapped = $1, kcv = $2, mac = coalesce($3, v.mac) FROM keys k WHERE k.id = v.key_id AND k.name = 'bait'`, [kek.wrapped, kek.kcv, mac]);
      await assert.rejects(distribute.execute({ keys: [{ name: 'bait' }], to: [{ listenerId: 'site-b' }], actor: 'mallory' }), refusedWith('ROW_MAC_INVALID'));
      assert.deepEqual(await snapshot(), before);
    }
  });

  it("one key version's blob moved into another key's row: ROW_MAC_INVALID, nothing queued; the untouched key still goes out", async () => {
    await createKey.execute({ name: 'src', algorithm: 'AES-256', actor: 'test' });
    await createKey.execute({ name: 'dst', algorithm: 'AES-256', actor: 'test' });
    const before = await snapshot();
    await sql(
      `UPDATE key_versions d SET wrapped = s.wrapped, kcv = s.kcv, mac = s.mac
         FROM key_versions s, keys ks, keys kd WHERE ks.id = s.key_id AND ks.name = 'src' AND kd.id = d.key_id AND kd.name = 'dst'`,
    );
    await assert.rejects(distribute.execute({ keys: [{ name: 'dst' }], to: [{ listenerId: 'site-b' }], actor: 'mallory' }), refusedWith('ROW_MAC_INVALID'));
    assert.deepEqual(await snapshot(), before);
    // A key's policy changed in the database (usages that allow extraction): refused the same way.
    await sql(`UPDATE keys SET usages = ARRAY['wrap', 'decrypt'] WHERE name = 'src'`);
    await assert.rejects(distribute.execute({ keys: [{ name: 'src' }], to: [{ listenerId: 'site-b' }], actor: 'mallory' }), refusedWith('ROW_MAC_INVALID'));
    await sql(`UPDATE keys SET usages = ARRAY['encrypt', 'decrypt'] WHERE name = 'src'`);
    assert.deepEqual(await snapshot(), before);
    const ok = await distribute.execute({ keys: [{ name: 'src' }], to: [{ listenerId: 'site-b' }], actor: 'test' });
    assert.equal(ok.queued.length, 1);
  });

  it("a root KEK row whose MAC is removed is refused, and init's one-time backfill does not give it one back", async () => {
    await createKey.execute({ name: 'plain', algorithm: 'AES-256', actor: 'test' });
    await sql(`UPDATE keks SET mac = NULL WHERE listener_id = 'site-b'`);
    const before = await snapshot();
    await assert.rejects(distribute.execute({ keys: [{ name: 'plain' }], to: [{ listenerId: 'site-b' }], actor: 'mallory' }), refusedWith('ROW_MAC_INVALID'));
    assert.deepEqual(await snapshot(), before);
    // init ran at set-up and recorded the backfill in the token: running it again backfills nothing.
    const init = await openHubRuntime(fx.config, { requireKeyring: false, databaseRole: 'owner' });
    try {
      await initHub(init.hsm, init.ds, 'test');
    } finally {
      await init.close();
    }
    const [{ n }] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM keks WHERE mac IS NULL`);
    assert.equal(n, 1, 'still without a MAC');
    await assert.rejects(distribute.execute({ keys: [{ name: 'plain' }], to: [{ listenerId: 'site-b' }], actor: 'mallory' }), refusedWith('ROW_MAC_INVALID'));
  });

  it('init backfills rows without a MAC only while the token does not record a completed backfill (an upgrade from before row MACs)', async () => {
    await createKey.execute({ name: 'legacy', algorithm: 'AES-256', actor: 'test' });
    const [{ mac }] = await sql<{ mac: Buffer }>(`SELECT v.mac FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'legacy'`);
    await sql(`UPDATE key_versions v SET mac = NULL FROM keys k WHERE k.id = v.key_id AND k.name = 'legacy'`);
    // As on a hub upgraded from before row MACs: no record of a backfill in the token yet.
    for (const h of await fx.rt.hsm.findKeys({ class: 'secret', label: ROW_MAC_BACKFILLED_LABEL, token: true })) await fx.rt.hsm.destroy(h);
    const init = await openHubRuntime(fx.config, { requireKeyring: false, databaseRole: 'owner' });
    try {
      await initHub(init.hsm, init.ds, 'test');
    } finally {
      await init.close();
    }
    const [after] = await sql<{ mac: Buffer }>(`SELECT v.mac FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'legacy'`);
    assert.deepEqual(after.mac, mac, 'the same MAC the key was created with');
    assert.equal((await fx.rt.hsm.findKeys({ class: 'secret', label: ROW_MAC_BACKFILLED_LABEL, token: true })).length, 1, 'and the token records it');
    assert.equal((await distribute.execute({ keys: [{ name: 'legacy' }], to: [{ listenerId: 'site-a' }], actor: 'test' })).queued.length, 1);
  });

  it('a transport key swapped in the database before approval: the fingerprint is recomputed from the stored keys, approval refused (FINGERPRINT_MISMATCH), no root KEK', async () => {
    const identity = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    const transport = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    const seen = enrollmentFingerprint('site-c', identity.toString('base64'), transport.toString('base64'));
    const now = new Date();
    await insertRows(
      fx.rt.ds.manager,
      'listeners',
      ['id', 'state', 'identity_key', 'transport_key', 'oaep_hash', 'fingerprint', 'targets', 'hostname', 'requested_at', 'last_seen_at'],
      [['site-c', 'pending_approval', identity, transport, 'sha1', seen, JSON.stringify([{ name: 'hsm', kind: 'pkcs11' }]), 'site-c.test.invalid', now, now]],
    );
    const approve = fx.rt.container.resolve(ApproveListener);
    const before = await snapshot();
    // Swapped, the fingerprint column left as the operator saw it ...
    await sql(`UPDATE listeners SET transport_key = $1 WHERE id = 'site-c'`, [attacker]);
    await assert.rejects(approve.execute('site-c', seen, 'alice'), refusedWith('FINGERPRINT_MISMATCH'));
    // ... and with the column made to match the swapped keys.
    await sql(`UPDATE listeners SET fingerprint = $1 WHERE id = 'site-c'`, [enrollmentFingerprint('site-c', identity.toString('base64'), attacker.toString('base64'))]);
    await assert.rejects(approve.execute('site-c', seen, 'alice'), refusedWith('FINGERPRINT_MISMATCH'));
    assert.deepEqual(await snapshot(), before, 'no root KEK, no outbox message');
    const [{ state }] = await sql<{ state: string }>(`SELECT state FROM listeners WHERE id = 'site-c'`);
    assert.equal(state, 'pending_approval');
    const refusals = await sql<{ details: Record<string, unknown> }>(`SELECT details FROM audit_events WHERE action = 'listener.approval_refused' AND subject = 'listener:site-c'`);
    assert.equal(refusals.length, 2);
  });

  it("a site's NATS user key swapped in the database before approval: the fingerprint binds it, approval refused, no credentials issued", async () => {
    const identity = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    const transport = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    const siteKey = nkeys.createUser().getPublicKey();
    const attackerKey = nkeys.createUser().getPublicKey();
    const seen = enrollmentFingerprint('site-d', identity.toString('base64'), transport.toString('base64'), siteKey);
    assert.notEqual(seen, enrollmentFingerprint('site-d', identity.toString('base64'), transport.toString('base64'), attackerKey), 'the NATS key is part of the fingerprint');
    const now = new Date();
    await insertRows(
      fx.rt.ds.manager,
      'listeners',
      ['id', 'state', 'identity_key', 'transport_key', 'oaep_hash', 'fingerprint', 'targets', 'hostname', 'requested_at', 'last_seen_at'],
      [['site-d', 'pending_approval', identity, transport, 'sha1', seen, JSON.stringify([{ name: 'hsm', kind: 'pkcs11' }]), 'site-d.test.invalid', now, now]],
    );
    await sql(
      `INSERT INTO listener_registrations (listener_id, bootstrap_key, nats_user_key, state, registered_by, registered_at, expires_at) VALUES ('site-d', $1, $2, 'open', 'alice', now(), now() + interval '1 day')`,
      [nkeys.createUser().getPublicKey(), siteKey],
    );
    const approve = fx.rt.container.resolve(ApproveListener);
    const before = await snapshot();
    // Whoever can write the database puts their own NATS key in the registration, so the site's credentials would be issued to them.
    await sql(`UPDATE listener_registrations SET nats_user_key = $1 WHERE listener_id = 'site-d'`, [attackerKey]);
    await assert.rejects(approve.execute('site-d', seen, 'alice'), refusedWith('FINGERPRINT_MISMATCH'));
    assert.deepEqual(await snapshot(), before, 'no root KEK, no outbox message (no credentials for the swapped key)');
    // With the site's own key back in place, the hub recomputes exactly the fingerprint the operator saw.
    await sql(`UPDATE listener_registrations SET nats_user_key = $1 WHERE listener_id = 'site-d'`, [siteKey]);
    assert.equal(await fx.rt.ds.transaction((m) => approve.pendingFingerprint(m, 'site-d')), seen);
  });

  it('key creation refuses usages that enable wrap/decrypt attacks (KEY_USAGE_CONFLICT)', async () => {
    for (const usages of [
      ['wrap', 'decrypt'],
      ['unwrap', 'encrypt'],
      ['encrypt', 'decrypt', 'wrap', 'unwrap'],
    ]) {
      await assert.rejects(createKey.execute({ name: `bad-${usages.join('-')}`, algorithm: 'AES-256', usages, actor: 'test' }), refusedWith('KEY_USAGE_CONFLICT'));
    }
    await createKey.execute({ name: 'wrapping', algorithm: 'AES-256', usages: ['wrap', 'unwrap'], actor: 'test' });
  });
});
