import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomBytes, randomUUID, sign as nodeSign } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { NatsConnection } from 'nats';
import { Client } from 'pg';
import { decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, signingInput, STREAMS, subjects, type KeyPackage, type SignedEnvelope, type TargetKekRotation } from '@keyhub/protocol';
import { Pkcs11Hsm } from '@keyhub/shared';
import { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { pkcs11Tool, type SoftHsmToken } from '../env';
import { Deployment } from '../harness/deployment';

const SITE = 'tkr-site';
const TARGET = 'tgt-r';

/**
 * Target KEK rotation end to end (issue 12), with real parts: hub and
 * listener processes, nats-server with auth, PostgreSQL, and a second
 * SoftHSM2 token behind the listener with a KEK of its own. Keys pushed
 * before, during and after rotations are all confirmed in that token, the
 * later ones under the new KEK version; a package issued under the previous
 * KEK and queued behind the rotation still imports;
 * pkcs11-tool shows each new KEK in the target token and the old one gone
 * after the next rotation; forged rotations install nothing.
 */
describe('end to end: rotating the KEK of a PKCS#11 target on another token', function () {
  this.timeout(300_000);
  let d: Deployment;
  let nc: NatsConnection;
  let pg: Client;
  let tok: SoftHsmToken;

  before(async () => {
    d = await Deployment.create([SITE]);
    await d.startHub();
    tok = await d.hsm.addToken('tkr-tgt');
    await d.enrollListener(SITE);
    await d.stopListener(SITE);
    const site = d.site(SITE);
    site.env = { ...site.env, KEYHUB_TKR_PIN: tok.pin };
    const configFile = path.join(site.home, 'listener.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { targets: unknown[] };
    config.targets.push({ name: TARGET, kind: 'pkcs11', hsm: { module: d.hsm.modulePath, tokenLabel: tok.label, pinEnv: 'KEYHUB_TKR_PIN' }, oaepHash: 'sha1', transportKeyBits: 2048 });
    await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
    const r = await d.listenerCli(SITE, ['--json', 'target', 'request', TARGET]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { fingerprint } = JSON.parse(r.stdout) as { fingerprint: string };
    await d.keyhubJson(['listener', 'target', 'approve', SITE, TARGET, '--fingerprint', fingerprint]);
    await d.startListener(SITE);
    nc = await d.natsConnect();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    await waitFor('the first target KEK active', async () => ((await keks()).some((k) => k.state === 'active') ? true : undefined));
  });

  after(async function () {
    this.timeout(60_000);
    await nc?.close();
    await pg?.end();
    await d?.cleanup();
  });

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const keks = async (): Promise<Array<{ id: string; version: number; state: string }>> =>
    (await pg.query(`SELECT id, version, state FROM target_keks WHERE listener_id = $1 AND target = $2 ORDER BY version`, [SITE, TARGET])).rows;

  /** pkcs11-tool's listing of the target token's secret keys, one block per object. */
  async function secretObjects(): Promise<string[]> {
    const r = await pkcs11Tool(d.hsm, ['--token-label', tok.label, '--login', '--pin', tok.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split(/\n(?=Secret Key Object)/).filter((b) => /Secret Key Object/.test(b));
  }
  const kekLabels = async (): Promise<string[]> =>
    (await secretObjects())
      .map((b) => /label:\s+(\S+)/.exec(b)?.[1] ?? '')
      .filter((l) => l.startsWith('keyhub-kek:'))
      .sort();
  const label = (k: { id: string; version: number }): string => `keyhub-kek:${k.id}:v${k.version}`;

  async function lastPackage(key: string): Promise<KeyPackage> {
    const jsm = await nc.jetstreamManager();
    const m = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.toListener(SITE, 'package') });
    const dec = decodeEnvelope(m.data);
    assert.ok(dec.ok);
    const pkg = (dec.envelope as SignedEnvelope<KeyPackage>).payload;
    assert.equal(pkg.key.name, key);
    return pkg;
  }

  const created = new Map<string, string>();
  async function push(key: string, wait = true): Promise<KeyPackage> {
    created.set(key, (await d.keyhubJson<{ kcv: string }>(['key', 'create', key, '--alg', 'AES-256'])).kcv);
    const r = await d.keyhub(['distribute', key, '--to', `${SITE}/${TARGET}`, ...(wait ? ['--wait', '--timeout', '60'] : [])]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return lastPackage(key);
  }

  async function assertConfirmedInToken(key: string): Promise<void> {
    const rows = await waitFor(`${key} confirmed`, async () => {
      const s = await d.keyhubJson<StatusRow[]>(['status', key]);
      return s[0]?.state === 'confirmed' ? s : undefined;
    });
    assert.deepEqual(
      rows.map((x) => [x.target, x.state, x.targetKcv]),
      [[TARGET, 'confirmed', created.get(key)]],
    );
    assert.equal((await secretObjects()).filter((o) => o.includes(`label:      ${key}.v1`)).length, 1, `${key} is in the target token`);
  }

  async function rotate(): Promise<{ kekId: string; version: number; kcv: string; wrappedUnder: { kekId: string; version: number }; retires: Array<{ kekId: string; version: number }> }> {
    return d.keyhubJson(['listener', 'target', 'rotate-kek', SITE, TARGET, '--reason', 'e2e']);
  }
  const waitActive = (kekId: string) => waitFor(`target KEK ${kekId} active`, async () => ((await keks()).find((k) => k.id === kekId)?.state === 'active' ? true : undefined));

  let v1: { id: string; version: number };
  let v2: { id: string; version: number };

  it('keys pushed before and after a rotation are confirmed in the target token, the later ones under the new KEK; a package issued under the old KEK and queued behind the rotation still imports', async () => {
    [v1] = await keks();
    assert.equal((await push('tkr-before')).wrapping.kekId, v1.id);
    await assertConfirmedInToken('tkr-before');

    // The site is down: the rotation waits in the stream, and a push queued behind it is still wrapped under v1 (v2 unconfirmed).
    await d.stopListener(SITE);
    const r = await rotate();
    assert.deepEqual([r.version, r.wrappedUnder.kekId, r.retires], [2, v1.id, []]);
    v2 = { id: r.kekId, version: 2 };
    const inflight = await push('tkr-inflight', false);
    assert.equal(inflight.wrapping.kekId, v1.id, 'issued before the site confirmed: under v1');
    await d.startListener(SITE);
    await waitActive(v2.id);
    await assertConfirmedInToken('tkr-inflight');
    // The site processes up to four messages at once, so which of the two came first is not fixed here; that a package under
    // the previous KEK imports after the new one is in is shown deterministically by integration/target-kek-rotation-listener.

    // Confirmed by KCV from the target token; the new KEK is an unwrap-only, sensitive, never extractable object there; v1 stays.
    const ev = await pg.query(`SELECT details FROM audit_events WHERE action = 'target_kek.rotated' AND details->>'kekId' = $1`, [v2.id]);
    assert.equal(ev.rows.length, 1);
    assert.equal(ev.rows[0].details.kcv, r.kcv);
    assert.deepEqual(await kekLabels(), [label(v1), label(v2)].sort());
    const obj = (await secretObjects()).find((o) => o.includes(label(v2)))!;
    assert.match(obj, /Access:\s+.*\bsensitive\b/);
    assert.doesNotMatch(obj.replace(/never extractable/g, ''), /\bextractable\b/);
    assert.match(obj, /Usage:\s+unwrap\s*\n/);
    // Nothing of it in the listener's own token.
    const own = d.site(SITE).token;
    const ownList = await pkcs11Tool(d.hsm, ['--token-label', own.label, '--login', '--pin', own.pin, '--list-objects', '--type', 'secrkey']);
    assert.ok(!ownList.stdout.includes(v2.id));

    assert.equal((await push('tkr-after')).wrapping.kekId, v2.id);
    await assertConfirmedInToken('tkr-after');
  });

  it('the next rotation destroys v1 in the target token (nothing is in flight under it) and keeps v2; keys keep arriving under the newest KEK', async () => {
    const r = await rotate();
    assert.deepEqual([r.version, r.wrappedUnder.kekId, r.retires], [3, v2.id, [{ kekId: v1.id, version: 1 }]]);
    await waitActive(r.kekId);
    await waitFor('v1 destroyed in the target token', async () => ((await kekLabels()).includes(label(v1)) ? undefined : true));
    assert.deepEqual(await kekLabels(), [label(v2), label({ id: r.kekId, version: 3 })].sort());
    assert.deepEqual(
      (await keks()).map((k) => [k.version, k.state]),
      [
        [1, 'destroyed'],
        [2, 'retired'],
        [3, 'active'],
      ],
    );
    assert.equal((await push('tkr-third')).wrapping.kekId, r.kekId);
    await assertConfirmedInToken('tkr-third');
    // Every key pushed along the way is still there.
    for (const key of ['tkr-before', 'tkr-inflight', 'tkr-after']) await assertConfirmedInToken(key);
  });

  it('forged rotations (not signed by the hub; hub-signed but under a KEK the site does not hold; hub-signed garbage under the real KEK) install and destroy nothing and earn no confirmation', async () => {
    const current = (await keks()).find((k) => k.state === 'active')!;
    const labelsBefore = await kekLabels();
    const objectsBefore = (await secretObjects()).length;
    const confirms: string[] = [];
    const sub = nc.subscribe(subjects.fromListener(SITE, 'target_kek'), {
      callback: (_e, m) => {
        const dec = decodeEnvelope(m.data);
        if (dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.targetKekConfirm) confirms.push(dec.envelope.payload.kekId);
      },
    });
    const all = (await keks()).map((k) => ({ id: k.id, version: k.version }));
    const rotation = (under: { id: string; version: number }): TargetKekRotation => ({
      type: MESSAGE_TYPES.targetKekRotation,
      id: randomUUID(),
      listenerId: SITE,
      issuedAt: new Date().toISOString(),
      target: TARGET,
      wrappedUnder: under,
      kek: { id: randomUUID(), version: current.version + 10, kcv: randomBytes(3).toString('hex'), mechanism: 'AES-KWP', blob: randomBytes(40).toString('base64') },
      // Each names every KEK of the target for destruction: none may go.
      retire: all,
    });
    // 1: signed by a key that is not the hub's (claiming the hub's key id), under the real current KEK.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const p1 = rotation({ id: current.id, version: current.version });
    const forged: SignedEnvelope<TargetKekRotation> = {
      payload: p1,
      signature: { alg: 'ES256', keyId: d.hubFingerprint, value: nodeSign('sha256', signingInput(p1), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') },
    };
    // 2: genuinely signed by the hub, wrapped under a KEK the site does not hold.
    const unknownUnder = await hubSign(rotation({ id: randomUUID(), version: current.version }));
    // 3: genuinely signed by the hub, naming the real current KEK, but its blob is not wrapped under it.
    const garbage = await hubSign(rotation({ id: current.id, version: current.version }));
    const js = nc.jetstream();
    for (const env of [forged, unknownUnder, garbage]) await js.publish(subjects.toListener(SITE, 'target_kek'), encodeEnvelope(env), { msgID: randomUUID() });
    const proc = d.site(SITE).process!;
    await proc.waitFor(/SIGNATURE_INVALID/);
    await proc.waitFor(/KEK_UNKNOWN/);
    await proc.waitFor(/UNWRAP_FAILED/);
    // All three were handled (their codes are in the log above); a real push after them still arrives.
    await push('tkr-after-forgery');
    await assertConfirmedInToken('tkr-after-forgery');
    await new Promise((r) => setTimeout(r, 500));
    sub.unsubscribe();
    const forgedIds = [forged, unknownUnder, garbage].map((e) => e.payload.kek.id);
    assert.deepEqual(
      confirms.filter((k) => forgedIds.includes(k)),
      [],
    );
    assert.deepEqual(await kekLabels(), labelsBefore, 'no KEK installed or destroyed');
    assert.equal((await secretObjects()).length, objectsBefore + 1, 'only the real push added an object');
    assert.equal((await pg.query(`SELECT count(*)::int AS n FROM target_keks WHERE id = ANY($1::uuid[])`, [forgedIds])).rows[0].n, 0);
    assert.equal((await keks()).find((k) => k.state === 'active')!.id, current.id, 'the active KEK did not change');
  });

  /** Signs a payload with the real hub key, the way only the hub can (the test holds the hub token PIN). */
  async function hubSign<M extends TargetKekRotation>(payload: M): Promise<SignedEnvelope<M>> {
    process.env.SOFTHSM2_CONF = d.hsm.confPath;
    process.env.KEYHUB_TEST_HUB_PIN = d.hsm.tokens.find((t) => t.label === 'hub')!.pin;
    const hsm = await Pkcs11Hsm.open({ module: d.hsm.modulePath, tokenLabel: 'hub', pinEnv: 'KEYHUB_TEST_HUB_PIN', sessions: 1, translateWorker: false });
    try {
      return await (await HubKeyring.load(hsm)).sign(payload);
    } finally {
      await hsm.close();
    }
  }
});
