import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomBytes, randomUUID, sign as nodeSign } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { Client } from 'pg';
import { decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, signingInput, STREAMS, subjects, type KeyPackage, type RootKekRotation, type SignedEnvelope } from '@keyhub/protocol';
import { Pkcs11Hsm } from '@keyhub/shared';
import { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { pkcs11Tool } from '../env';
import type { Deployment } from '../harness/deployment';
import { siteLifecycleDeployment } from './site-lifecycle-deployment';

/**
 * Root KEK rotation and a compromised root KEK, end to end with real parts
 * (nats-server with auth, PostgreSQL, SoftHSM2 tokens, the real CLIs):
 * packages before and after a rotation are confirmed, the later ones under
 * the new KEK version; forged rotations earn nothing; a compromised root KEK
 * makes the site enroll again, lists what must be re-keyed, and new pushes
 * then travel under the new root KEK.
 */
describe('end to end: root KEK rotation and a compromised root KEK', function () {
  this.timeout(240_000);
  let d: Deployment;
  let nc: NatsConnection;
  let pg: Client;

  before(async () => {
    d = await siteLifecycleDeployment();
    await Promise.all([d.enrollListener('site-a'), d.enrollListener('site-c')]);
    nc = await d.natsConnect();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    await nc?.close();
    await pg?.end();
    for (const site of ['site-a', 'site-c']) await d?.stopListener(site).catch(() => undefined);
  });

  async function push(key: string, to: string): Promise<void> {
    await d.keyhubJson(['key', 'create', key, '--alg', 'AES-256']);
    const r = await d.keyhub(['distribute', key, '--to', to, '--wait', '--timeout', '60']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }

  async function status(key: string): Promise<StatusRow[]> {
    return d.keyhubJson<StatusRow[]>(['status', key]);
  }

  /** Labels of the secret-key objects in a site's token, via pkcs11-tool. */
  async function tokenLabels(site: string): Promise<string[]> {
    const token = d.site(site).token;
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return [...r.stdout.matchAll(/label:\s+(\S+)/g)].map((m) => m[1]);
  }

  const kekLabels = async (site: string): Promise<string[]> => (await tokenLabels(site)).filter((l) => l.startsWith('keyhub-kek:')).sort();

  /** The newest package published to a site for a key, straight from the stream. */
  async function packageFor(site: string, key: string): Promise<KeyPackage> {
    const jsm = await nc.jetstreamManager();
    const m = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.toListener(site, 'package') });
    const dec = decodeEnvelope(m.data);
    assert.ok(dec.ok);
    const pkg = (dec.envelope as SignedEnvelope<KeyPackage>).payload;
    assert.equal(pkg.key.name, key, 'the last package is the one just pushed');
    return pkg;
  }

  async function keks(site: string): Promise<Array<{ id: string; version: number; state: string; len: number }>> {
    const r = await pg.query(`SELECT id, version, state, length(wrapped)::int AS len FROM keks WHERE listener_id = $1 ORDER BY version`, [site]);
    return r.rows as Array<{ id: string; version: number; state: string; len: number }>;
  }

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function rotate(site: string): Promise<{ kekId: string; version: number; kcv: string }> {
    const r = await d.keyhubJson<{ kekId: string; version: number; kcv: string; wrappedUnder: { version: number } }>(['listener', 'rotate-kek', site]);
    await waitFor(`rotation of ${site} to v${r.version}`, async () => ((await keks(site)).find((k) => k.id === r.kekId)?.state === 'active' ? true : undefined));
    return r;
  }

  it('keys pushed before and after rotations are all confirmed, the later ones under the new KEK; the site keeps only the current and previous KEK', async () => {
    await push('rot-before', 'site-a');
    assert.equal((await packageFor('site-a', 'rot-before')).wrapping.kekVersion, 1);
    const v1 = (await keks('site-a'))[0];

    const r2 = await rotate('site-a');
    assert.equal(r2.version, 2);
    const rows = await keks('site-a');
    assert.deepEqual(
      rows.map((k) => [k.version, k.state]),
      [
        [1, 'retired'],
        [2, 'active'],
      ],
    );
    // Confirmed by KCV: the site's confirmation carried the KCV the hub made.
    const ev = await pg.query(`SELECT details FROM audit_events WHERE action = 'kek.rotated' AND subject = 'listener:site-a'`);
    assert.equal(ev.rows.length, 1);
    assert.equal(ev.rows[0].details.kcv, r2.kcv);
    assert.deepEqual(await kekLabels('site-a'), [`keyhub-kek:${v1.id}:v1`, `keyhub-kek:${r2.kekId}:v2`].sort());

    await push('rot-after', 'site-a');
    const after = await packageFor('site-a', 'rot-after');
    assert.deepEqual([after.wrapping.kekId, after.wrapping.kekVersion], [r2.kekId, 2]);

    const r3 = await rotate('site-a');
    assert.equal(r3.version, 3);
    await push('rot-third', 'site-a');
    assert.equal((await packageFor('site-a', 'rot-third')).wrapping.kekVersion, 3);
    // Retirement: installing v3 (under v2) destroyed v1 at the site.
    await waitFor('v1 destroyed at the site', async () => ((await kekLabels('site-a')).some((l) => l.endsWith(':v1')) ? undefined : true));
    assert.deepEqual(await kekLabels('site-a'), [`keyhub-kek:${r2.kekId}:v2`, `keyhub-kek:${r3.kekId}:v3`].sort());

    for (const key of ['rot-before', 'rot-after', 'rot-third']) {
      assert.equal((await status(key))[0].state, 'confirmed', key);
      assert.ok(
        (await tokenLabels('site-a')).some((l) => l.startsWith(`${key}.v1`)),
        `${key} is in the token`,
      );
    }
  });

  it('a second rotation while one awaits its confirmation is refused', async () => {
    await d.stopListener('site-a');
    try {
      const first = await d.keyhubJson<{ version: number }>(['listener', 'rotate-kek', 'site-a']);
      const again = await d.keyhub(['--json', 'listener', 'rotate-kek', 'site-a']);
      assert.notEqual(again.code, 0);
      assert.match(again.stdout + again.stderr, /KEK_ROTATION_PENDING/);
      assert.equal((await keks('site-a')).filter((k) => k.state === 'pending_confirmation').length, 1);
      await d.startListener('site-a');
      await waitFor('pending rotation confirmed', async () => ((await keks('site-a')).find((k) => k.version === first.version)?.state === 'active' ? true : undefined));
    } finally {
      if (!d.site('site-a').process) await d.startListener('site-a');
    }
  });

  it('forged rotation messages earn nothing: no KEK in the token, no confirmation, no state change', async () => {
    const current = (await keks('site-a')).find((k) => k.state === 'active')!;
    const confirms: string[] = [];
    const sub = nc.subscribe(subjects.fromListener('site-a', 'kek_confirm'), {
      callback: (_e, m) => {
        const dec = decodeEnvelope(m.data);
        if (dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.rootKekConfirm) confirms.push(dec.envelope.payload.kekId);
      },
    });
    const rotation = (kekId: string): RootKekRotation => ({
      type: MESSAGE_TYPES.rootKekRotation,
      id: randomUUID(),
      listenerId: 'site-a',
      issuedAt: new Date().toISOString(),
      wrappedUnder: { id: current.id, version: current.version },
      kek: { id: kekId, version: current.version + 10, kcv: randomBytes(3).toString('hex'), mechanism: 'AES-KWP', blob: randomBytes(40).toString('base64') },
    });
    // 1: signed by a key that is not the hub's (claiming the hub's key id).
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forgedId = randomUUID();
    const forgedPayload = rotation(forgedId);
    const forged: SignedEnvelope<RootKekRotation> = {
      payload: forgedPayload,
      signature: { alg: 'ES256', keyId: d.hubFingerprint, value: nodeSign('sha256', signingInput(forgedPayload), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') },
    };
    // 2: genuinely signed by the hub, but its blob is not wrapped under the site's KEK.
    const garbageId = randomUUID();
    const genuine = await hubSign(rotation(garbageId));
    const js = nc.jetstream();
    for (const env of [forged, genuine]) await js.publish(subjects.toListener('site-a', 'root_kek'), encodeEnvelope(env), { msgID: randomUUID() });
    // A real push after them: once it is confirmed, both were handled (the consumer is in stream order).
    await push('after-forgery', 'site-a');
    await new Promise((r) => setTimeout(r, 500));
    sub.unsubscribe();
    assert.deepEqual(
      confirms.filter((k) => k === forgedId || k === garbageId),
      [],
    );
    const labels = await kekLabels('site-a');
    assert.ok(!labels.some((l) => l.includes(forgedId) || l.includes(garbageId)), labels.join(','));
    const rows = await pg.query(`SELECT count(*)::int AS n FROM keks WHERE id = ANY($1::uuid[])`, [[forgedId, garbageId]]);
    assert.equal(rows.rows[0].n, 0);
    assert.equal((await keks('site-a')).find((k) => k.state === 'active')!.id, current.id, 'the active KEK did not change');
  });

  /** Signs a payload with the real hub key, the way only the hub can (the test holds the hub token PIN). */
  async function hubSign<M extends RootKekRotation>(payload: M): Promise<SignedEnvelope<M>> {
    process.env.SOFTHSM2_CONF = d.hsm.confPath;
    process.env.KEYHUB_TEST_HUB_PIN = d.hsm.tokens.find((t) => t.label === 'hub')!.pin;
    const hsm = await Pkcs11Hsm.open({ module: d.hsm.modulePath, tokenLabel: 'hub', pinEnv: 'KEYHUB_TEST_HUB_PIN', sessions: 1 });
    try {
      return await (await HubKeyring.load(hsm)).sign(payload);
    } finally {
      await hsm.close();
    }
  }

  describe('a compromised root KEK', () => {
    let oldFingerprint = '';
    let listing: { state: string; compromisedKeks: Array<{ version: number }>; keysToRekey: Array<{ keyName: string; version: number; target: string; heldElsewhere: boolean }> };

    before(async () => {
      await push('cmp-only', 'site-c');
      await push('cmp-shared', 'site-c');
      const shared = await d.keyhub(['distribute', 'cmp-shared', '--to', 'site-a', '--wait', '--timeout', '60']);
      assert.equal(shared.code, 0, shared.stdout + shared.stderr);
      oldFingerprint = (await d.keyhubJson<{ fingerprint: string }>(['listener', 'show', 'site-c'])).fingerprint;
      listing = await d.keyhubJson(['listener', 'rekey', 'site-c', '--compromised', '--reason', 'e2e']);
    });

    it('marks every root KEK of the site compromised (blob wiped), lists every key it protected, and stops distribution', async () => {
      assert.equal(listing.state, 'rekey_required');
      assert.deepEqual(
        listing.compromisedKeks.map((k) => k.version),
        [1],
      );
      assert.deepEqual(
        listing.keysToRekey.map((k) => [k.keyName, k.version, k.target, k.heldElsewhere]),
        [
          ['cmp-only', 1, 'hsm', false],
          ['cmp-shared', 1, 'hsm', true],
        ],
      );
      assert.deepEqual(
        (await keks('site-c')).map((k) => [k.state, k.len]),
        [['compromised', 0]],
      );
      assert.equal(await d.listenerState('site-c'), 'rekey_required');
      const audit = await pg.query(`SELECT action FROM audit_events WHERE subject = 'listener:site-c' AND action IN ('kek.compromised', 'listener.rekey_required') ORDER BY seq`);
      assert.deepEqual(
        audit.rows.map((r) => r.action),
        ['kek.compromised', 'listener.rekey_required'],
      );
      // Nothing is issued to it now, and it cannot be rotated.
      await d.keyhubJson(['key', 'create', 'cmp-refused', '--alg', 'AES-256']);
      const before = (await pg.query(`SELECT count(*)::int AS n FROM packages WHERE listener_id = 'site-c'`)).rows[0].n;
      await d.keyhub(['distribute', 'cmp-refused', '--to', 'site-c']);
      assert.equal((await pg.query(`SELECT count(*)::int AS n FROM packages WHERE listener_id = 'site-c'`)).rows[0].n, before);
      const rot = await d.keyhub(['--json', 'listener', 'rotate-kek', 'site-c']);
      assert.match(rot.stdout + rot.stderr, /LISTENER_STATE_INVALID/);
    });

    it('the site enrolls again with a new transport key: the old fingerprint is refused, the new one approved, and new pushes use the new root KEK', async () => {
      await d.stopListener('site-c');
      const enroll = await d.listenerCli('site-c', ['--json', 'enroll']);
      assert.equal(enroll.code, 0, enroll.stdout + enroll.stderr);
      const { fingerprint } = JSON.parse(enroll.stdout) as { fingerprint: string };
      assert.notEqual(fingerprint, oldFingerprint, 'a new transport key makes a new fingerprint');
      await d.waitForListenerState('site-c', 'pending_approval');
      const stale = await d.keyhub(['--json', 'listener', 'approve', 'site-c', '--fingerprint', oldFingerprint]);
      assert.match(stale.stdout + stale.stderr, /FINGERPRINT_MISMATCH/);
      const ok = await d.keyhub(['listener', 'approve', 'site-c', '--fingerprint', fingerprint]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      await d.startListener('site-c');
      await d.waitForListenerState('site-c', 'active');
      const rows = await keks('site-c');
      assert.deepEqual(
        rows.map((k) => [k.version, k.state]),
        [
          [1, 'compromised'],
          [2, 'active'],
        ],
      );
      // The compromised KEK is gone from the site's token; the new one is there.
      assert.deepEqual(await kekLabels('site-c'), [`keyhub-kek:${rows[1].id}:v2`]);
      await push('cmp-after', 'site-c');
      const pkg = await packageFor('site-c', 'cmp-after');
      assert.deepEqual([pkg.wrapping.kekId, pkg.wrapping.kekVersion], [rows[1].id, 2]);
      assert.equal((await status('cmp-after'))[0].state, 'confirmed');
    });

    it('an active site cannot be registered or enrolled again outside this path', async () => {
      const r = await d.keyhub(['--json', 'listener', 'register', 'site-a', '--out', `${d.dir.path}/again.creds`]);
      assert.match(r.stdout + r.stderr, /LISTENER_STATE_INVALID/);
    });
  });
});
