import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign as nodeSign } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { NatsConnection } from 'nats';
import { Client } from 'pg';
import { decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, signingInput, STREAMS, subjects, type KeyPackage, type SignedEnvelope, type TargetKekMessage } from '@keyhub/protocol';
import { aesKcv, cmacSubkey, Pkcs11Hsm } from '@keyhub/shared';
import { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { ListenerKeys } from '@keyhub/listener/dist/listener-keys';
import { Pkcs11Target } from '@keyhub/listener/dist/targets/pkcs11-target';
import { pkcs11Tool, type SoftHsmToken } from '../env';
import { Deployment } from '../harness/deployment';

const SITE = 'ot-site';
interface TargetRow {
  name: string;
  kek: { scope: string; state: string; kekId: string | null; version: number | null; kcv: string | null; transportFingerprint: string | null };
  inventory: { items: number };
  health: { healthy: boolean | null; detail: string | null };
}

/**
 * Issue 12, "Other tokens": one listener delivers into two SoftHSM2 tokens
 * besides its own, each with a KEK of its own installed in it (transport key
 * made in that token, RSA-OAEP from the hub HSM, confirmed by KCV). What
 * differs between the two targets' profiles (SoftHSM2 implements one KWP
 * code, 0x210A, and OAEP with SHA-1 only, so neither can differ there):
 * target A loads the system module path with the default KWP code, its PIN
 * from an environment variable and a 2048-bit transport key; target B loads
 * a COPY of the module from another path (a second module instance in the
 * listener process), with KWP 0x210A set explicitly, its PIN from an
 * owner-only file and a 4096-bit transport key.
 */
describe('end to end: PKCS#11 targets on other tokens, each with its own KEK', function () {
  this.timeout(300_000);
  let d: Deployment;
  let nc: NatsConnection;
  let pg: Client;
  let tokA: SoftHsmToken;
  let tokB: SoftHsmToken;
  let moduleB = '';
  const fingerprints: Record<string, string> = {};

  before(async () => {
    d = await Deployment.create([SITE]);
    await d.startHub();
    tokA = await d.hsm.addToken('ot-tgt-a');
    tokB = await d.hsm.addToken('ot-tgt-b');
    await d.enrollListener(SITE);
    await d.stopListener(SITE);
    // Target B's module from another path, and its PIN in an owner-only file.
    await mkdir(path.join(d.dir.path, 'modules'), { recursive: true });
    moduleB = path.join(d.dir.path, 'modules', 'libsofthsm2-copy.so');
    await copyFile(d.hsm.modulePath, moduleB);
    const pinFileB = path.join(d.dir.path, 'tgt-b.pin');
    await writeFile(pinFileB, tokB.pin, { mode: 0o600 });
    const site = d.site(SITE);
    site.env = { ...site.env, KEYHUB_TGT_A_PIN: tokA.pin };
    const configFile = path.join(site.home, 'listener.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { targets: unknown[]; inventorySeconds?: number };
    // Inventories often, so the hub's per-target counts follow the pushes within the test.
    config.inventorySeconds = 2;
    config.targets.push(
      { name: 'tgt-a', kind: 'pkcs11', hsm: { module: d.hsm.modulePath, tokenLabel: tokA.label, pinEnv: 'KEYHUB_TGT_A_PIN' }, oaepHash: 'sha1', transportKeyBits: 2048 },
      { name: 'tgt-b', kind: 'pkcs11', hsm: { module: moduleB, tokenLabel: tokB.label, pinFile: pinFileB, kwpMechanism: 0x210a, sessions: 2 }, oaepHash: 'sha1', transportKeyBits: 4096 },
    );
    await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
    for (const t of ['tgt-a', 'tgt-b']) {
      const r = await d.listenerCli(SITE, ['--json', 'target', 'request', t]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      fingerprints[t] = (JSON.parse(r.stdout) as { fingerprint: string }).fingerprint;
    }
    nc = await d.natsConnect();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async function () {
    this.timeout(60_000);
    await nc?.close();
    await pg?.end();
    await d?.cleanup();
  });

  const targets = async (): Promise<TargetRow[]> => (await d.keyhubJson<{ targets: TargetRow[] }>(['listener', 'target', 'list', SITE])).targets;

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const kekOf = async (t: string): Promise<TargetRow['kek']> => (await targets()).find((x) => x.name === t)!.kek;

  /** pkcs11-tool's listing of a token's objects of one type, one block per object. */
  async function objects(token: SoftHsmToken, type: 'secrkey' | 'privkey'): Promise<string[]> {
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', type]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split(/\n(?=(Secret|Private) Key Object)/).filter((b) => /Key Object/.test(b));
  }

  /** AES-CMAC KCV from two raw AES-ECB encryptions done by pkcs11-tool in the token. */
  async function kcvViaPkcs11Tool(token: SoftHsmToken, idHex: string): Promise<string> {
    const ecb = async (block: Buffer): Promise<Buffer> => {
      const input = path.join(d.dir.path, `in-${randomUUID()}`);
      await writeFile(input, block);
      const r = await pkcs11Tool(d.hsm, [
        '--token-label',
        token.label,
        '--login',
        '--pin',
        token.pin,
        '--encrypt',
        '-m',
        'AES-ECB',
        '--id',
        idHex,
        '--input-file',
        input,
        '--output-file',
        `${input}.out`,
      ]);
      assert.equal(r.code, 0, `pkcs11-tool --encrypt failed: ${r.stderr}`);
      return readFile(`${input}.out`);
    };
    const l = await ecb(Buffer.alloc(16));
    return (await ecb(cmacSubkey(l))).subarray(0, 3).toString('hex');
  }

  async function lastPackage(key: string): Promise<KeyPackage> {
    const jsm = await nc.jetstreamManager();
    const m = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.toListener(SITE, 'package') });
    const dec = decodeEnvelope(m.data);
    assert.ok(dec.ok);
    const pkg = (dec.envelope as SignedEnvelope<KeyPackage>).payload;
    assert.equal(pkg.key.name, key);
    return pkg;
  }

  const pushed = new Map<string, { id: string; kcv: string; pkg: KeyPackage }>();

  it('a target KEK is requested, refused with a wrong fingerprint, approved with the right one, installed in its own token and active at the hub', async () => {
    const before = await targets();
    assert.deepEqual(
      before.map((t) => [t.name, t.kek.scope, t.kek.state]),
      [
        ['hsm', 'root', 'active'],
        ['tgt-a', 'own', 'requested'],
        ['tgt-b', 'own', 'requested'],
      ],
    );
    // Both sides show the same fingerprint.
    assert.equal(before[1].kek.transportFingerprint, fingerprints['tgt-a']);
    assert.equal(before[2].kek.transportFingerprint, fingerprints['tgt-b']);
    const wrong = await d.keyhub(['--json', 'listener', 'target', 'approve', SITE, 'tgt-a', '--fingerprint', fingerprints['tgt-b']]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stdout + wrong.stderr, /FINGERPRINT_MISMATCH/);
    // A target the site added is not a destination until an operator approved it.
    await d.keyhubJson(['key', 'create', 'ot-early', '--alg', 'AES-256']);
    const unknown = await d.keyhub(['--json', 'distribute', 'ot-early', '--to', `${SITE}/tgt-a`]);
    assert.match(unknown.stdout + unknown.stderr, /TARGET_UNKNOWN/);
    for (const t of ['tgt-a', 'tgt-b']) {
      const ok = await d.keyhubJson<{ kekId: string; kcv: string }>(['listener', 'target', 'approve', SITE, t, '--fingerprint', fingerprints[t]]);
      assert.match(ok.kcv, /^[0-9a-f]{6}$/);
    }
    // Approved but not yet confirmed by the site: nothing is wrapped for it (not under the root KEK either), nothing queued.
    const early = await d.keyhub(['--json', 'distribute', 'ot-early', '--to', `${SITE}/tgt-a`]);
    assert.match(early.stdout + early.stderr, /TARGET_KEK_NOT_ACTIVE/);
    assert.equal((await pg.query(`SELECT count(*)::int AS n FROM packages WHERE listener_id = $1`, [SITE])).rows[0].n, 0);
    await d.startListener(SITE);
    for (const t of ['tgt-a', 'tgt-b']) await waitFor(`${t} KEK active`, async () => ((await kekOf(t)).state === 'active' ? true : undefined));
    // Each KEK is in its own token only, unwrap-only, sensitive, never extractable; the transport private key is gone.
    for (const [t, token, other] of [
      ['tgt-a', tokA, tokB],
      ['tgt-b', tokB, tokA],
    ] as const) {
      const kek = await kekOf(t);
      const label = `keyhub-kek:${kek.kekId}:v1`;
      const mine = (await objects(token, 'secrkey')).filter((o) => o.includes(label));
      assert.equal(mine.length, 1, `${t}: its KEK in its token`);
      assert.match(mine[0], /Access:\s+.*\bsensitive\b/);
      assert.doesNotMatch(mine[0].replace(/never extractable/g, ''), /\bextractable\b/);
      assert.match(mine[0], /Usage:\s+unwrap\s*\n/, `${t}: a KEK unwraps and does nothing else`);
      assert.equal((await objects(other, 'secrkey')).filter((o) => o.includes(label)).length, 0, `${t}: its KEK is not in the other token`);
      assert.equal((await objects(d.site(SITE).token, 'secrkey')).filter((o) => o.includes(label)).length, 0, `${t}: its KEK is not in the listener's own token`);
      assert.equal((await objects(token, 'privkey')).length, 0, `${t}: the transport private key is destroyed after install`);
      const ev = await pg.query(`SELECT details FROM audit_events WHERE action = 'target_kek.activated' AND details->>'target' = $1`, [t]);
      assert.equal(ev.rows.length, 1);
      assert.equal(ev.rows[0].details.kcv, kek.kcv);
    }
  });

  it('keys pushed to each token arrive under that token KEK: pkcs11-tool finds each in its token only, sensitive, non-extractable, with the hub KCV', async () => {
    for (const [key, target] of [
      ['ot-key-a', 'tgt-a'],
      ['ot-key-b', 'tgt-b'],
      ['ot-key-own', 'hsm'],
    ] as const) {
      const created = await d.keyhubJson<{ kcv: string; id: string }>(['key', 'create', key, '--alg', 'AES-256']);
      const r = await d.keyhub(['distribute', key, '--to', `${SITE}/${target}`, '--wait', '--timeout', '60']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const rows = await d.keyhubJson<StatusRow[]>(['status', key]);
      assert.deepEqual(
        rows.map((x) => [x.target, x.state, x.targetKcv]),
        [[target, 'confirmed', created.kcv]],
      );
      const pkg = await lastPackage(key);
      pushed.set(key, { ...created, pkg });
      const expectedKek = target === 'hsm' ? (await kekOf('hsm')).kekId : (await kekOf(target)).kekId;
      assert.equal(pkg.wrapping.kekId, expectedKek, `${key}: wrapped under ${target}'s KEK`);
    }
    const idOf = (key: string): string => pushed.get(key)!.id.replace(/-/g, '') + '00000001';
    const own = d.site(SITE).token;
    for (const [key, token, others] of [
      ['ot-key-a', tokA, [tokB, own]],
      ['ot-key-b', tokB, [tokA, own]],
      ['ot-key-own', own, [tokA, tokB]],
    ] as const) {
      const found = (await objects(token, 'secrkey')).filter((o) => o.includes(`label:      ${key}.v1`));
      assert.equal(found.length, 1, `${key}: one object in its token`);
      assert.match(found[0], /^Secret Key Object; AES/);
      assert.match(found[0], /Access:\s+.*\bsensitive\b/);
      assert.doesNotMatch(found[0].replace(/never extractable/g, ''), /\bextractable\b/);
      assert.match(found[0], /Usage:\s+encrypt, decrypt\s*\n/);
      assert.match(found[0], new RegExp(`ID:\\s+${idOf(key)}`));
      assert.equal(await kcvViaPkcs11Tool(token, idOf(key)), pushed.get(key)!.kcv);
      for (const o of others) assert.equal((await objects(o, 'secrkey')).filter((b) => b.includes(`${key}.v1`)).length, 0, `${key}: not in ${o.label}`);
    }
    // The hub sees each target with its inventory.
    let last: TargetRow[] = [];
    await waitFor('inventory counts', async () => {
      last = await targets();
      return last.length === 3 && last.every((x) => x.inventory.items === 1) ? true : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last.map((t) => [t.name, t.inventory]))}\n${d.hub?.output.slice(-1500) ?? ''}\n${d.site(SITE).process?.output.slice(-1500) ?? ''}`);
    });
  });

  it('target B missing (its HSM module gone): the listener still starts, B shows unhealthy at the hub, a push to B waits (TARGET_UNAVAILABLE) and is confirmed once B is back', async () => {
    await d.stopListener(SITE);
    await rename(moduleB, `${moduleB}.gone`);
    let restored = false;
    try {
      const proc = await d.startListener(SITE);
      await waitFor('target B unhealthy at the hub', async () => ((await targets()).find((t) => t.name === 'tgt-b')?.health.healthy === false ? true : undefined), 60_000);
      const created = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'ot-key-b-missing', '--alg', 'AES-256']);
      const r = await d.keyhub(['distribute', 'ot-key-b-missing', '--to', `${SITE}/tgt-b`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await proc.waitFor(/TARGET_UNAVAILABLE/);
      assert.notEqual((await d.keyhubJson<StatusRow[]>(['status', 'ot-key-b-missing']))[0]?.state, 'confirmed');
      // Target A goes on meanwhile.
      const a = await d.keyhub(['distribute', 'ot-key-a', '--to', `${SITE}/tgt-a`, '--wait', '--timeout', '60']);
      assert.equal(a.code, 0, a.stdout + a.stderr);
      await rename(`${moduleB}.gone`, moduleB);
      restored = true;
      const row = await waitFor(
        'the push to B confirmed once B is back',
        async () => {
          const [x] = await d.keyhubJson<StatusRow[]>(['status', 'ot-key-b-missing']);
          return x?.state === 'confirmed' ? x : undefined;
        },
        120_000,
      );
      assert.equal(row.targetKcv, created.kcv);
      await waitFor('target B healthy again at the hub', async () => ((await targets()).find((t) => t.name === 'tgt-b')?.health.healthy === true ? true : undefined), 60_000);
    } finally {
      if (!restored) await rename(`${moduleB}.gone`, moduleB).catch(() => undefined);
    }
  });

  it('no PIN and no key material leave the tokens: not in any output, not in the listener home', async () => {
    const hubOut = d.hub?.output ?? '';
    const siteOut = d.site(SITE).process?.output ?? '';
    assert.ok(hubOut.length > 0 && siteOut.length > 0, 'both outputs were captured (else nothing below is checked)');
    const outputs = hubOut + siteOut;
    for (const secret of [tokA.pin, tokB.pin, d.site(SITE).token.pin]) {
      assert.ok(!outputs.includes(secret), 'a PIN appeared in the output');
      assert.ok(!(await readFile(path.join(d.site(SITE).home, 'listener.json'), 'utf8')).includes(secret), 'a PIN in the configuration');
    }
    // The blobs of the packages (KEK-wrapped, never clear) are not logged either.
    assert.equal(pushed.size, 3, 'the packages of the push test');
    for (const { pkg } of pushed.values()) assert.ok(!outputs.includes(pkg.wrapping.blob));
  });

  it('a package wrapped under target A KEK cannot be imported into target B: refused, nothing imported', async () => {
    const pkg = pushed.get('ot-key-a')!.pkg;
    process.env.SOFTHSM2_CONF = d.hsm.confPath;
    process.env.KEYHUB_TEST_TGT_B_PIN = tokB.pin;
    const hsm = await Pkcs11Hsm.open({ module: d.hsm.modulePath, tokenLabel: tokB.label, pinEnv: 'KEYHUB_TEST_TGT_B_PIN', sessions: 1, translateWorker: false });
    try {
      const target = new Pkcs11Target('tgt-b', hsm, new ListenerKeys(hsm), '');
      const count = async (): Promise<number> => (await hsm.findKeys({ token: true })).length;
      const before = await count();
      const req = {
        key: pkg.key,
        wrapped: { kekId: pkg.wrapping.kekId, kekVersion: pkg.wrapping.kekVersion, mechanism: pkg.wrapping.mechanism, blob: Buffer.from(pkg.wrapping.blob, 'base64') },
      };
      // As sent: B does not hold A's KEK.
      await assert.rejects(target.import(req), (e: { code?: string }) => e.code === 'KEK_UNKNOWN');
      // Relabelled to B's own KEK: the blob does not unwrap under it.
      const kekB = await kekOf('tgt-b');
      await assert.rejects(target.import({ ...req, wrapped: { ...req.wrapped, kekId: kekB.kekId!, kekVersion: kekB.version! } }), (e: { code?: string }) => e.code === 'UNWRAP_FAILED');
      assert.equal(await count(), before, 'nothing was imported into B');
    } finally {
      await hsm.close();
    }
  });

  describe('the target KEK install is refused on a KCV mismatch and for a forged message', () => {
    let fingerprint = '';
    const confirms: string[] = [];

    before(async () => {
      // A new request for B: a new transport key waits in B's token.
      const r = await d.listenerCli(SITE, ['--json', 'target', 'request', 'tgt-b']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      fingerprint = (JSON.parse(r.stdout) as { fingerprint: string }).fingerprint;
      nc.subscribe(subjects.fromListener(SITE, 'target_kek'), {
        callback: (_e, m) => {
          const dec = decodeEnvelope(m.data);
          if (dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.targetKekConfirm) confirms.push(dec.envelope.payload.kekId);
        },
      });
    });

    /** A target KEK for B, made and signed as the hub would (the test holds the hub PIN), with the KCV it is told. */
    async function hubTargetKek(kcv: (real: string) => string, sign: boolean): Promise<SignedEnvelope<TargetKekMessage>> {
      process.env.SOFTHSM2_CONF = d.hsm.confPath;
      process.env.KEYHUB_TEST_HUB_PIN = d.hsm.tokens.find((t) => t.label === 'hub')!.pin;
      const hsm = await Pkcs11Hsm.open({ module: d.hsm.modulePath, tokenLabel: 'hub', pinEnv: 'KEYHUB_TEST_HUB_PIN', sessions: 1, translateWorker: false });
      try {
        const row = await pg.query(`SELECT transport_key FROM target_keks WHERE listener_id = $1 AND target = 'tgt-b' AND state = 'requested'`, [SITE]);
        const kek = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
        const transport = await hsm.importRsaWrappingKey(row.rows[0].transport_key as Buffer);
        const payload: TargetKekMessage = {
          type: MESSAGE_TYPES.targetKek,
          id: randomUUID(),
          listenerId: SITE,
          issuedAt: new Date().toISOString(),
          target: 'tgt-b',
          transportFingerprint: fingerprint,
          kek: { id: randomUUID(), version: 9, kcv: kcv(await aesKcv(hsm, kek)), mechanism: 'RSA-OAEP', oaepHash: 'sha1', blob: (await hsm.wrapRsaOaep(transport, kek, 'sha1')).toString('base64') },
        };
        if (sign) return await (await HubKeyring.load(hsm)).sign(payload);
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        return { payload, signature: { alg: 'ES256', keyId: d.hubFingerprint, value: nodeSign('sha256', signingInput(payload), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') } };
      } finally {
        await hsm.close();
      }
    }

    it('a hub-signed target KEK whose KCV differs, and a forged one with the right KCV, install nothing and earn no confirmation', async () => {
      const mismatched = await hubTargetKek((real) => (real === '000000' ? '000001' : '000000'), true);
      const forged = await hubTargetKek((real) => real, false);
      const js = nc.jetstream();
      for (const env of [mismatched, forged]) await js.publish(subjects.toListener(SITE, 'target_kek'), encodeEnvelope(env), { msgID: randomUUID() });
      const proc = d.site(SITE).process!;
      await proc.waitFor(/KCV_MISMATCH/);
      await proc.waitFor(/SIGNATURE_INVALID/);
      const labels = (await objects(tokB, 'secrkey')).join('\n');
      for (const env of [mismatched, forged]) assert.ok(!labels.includes(env.payload.kek.id), 'no KEK object was made');
      // The transport key is still there, waiting for the genuine KEK.
      assert.equal((await objects(tokB, 'privkey')).length, 1);
      // The genuine approval, while the site is down: a confirmation with another KCV (signed by the site's identity key) activates nothing.
      await d.stopListener(SITE);
      // Under the listener.target_approve policy the officer's approval is a request; nothing is made until an approver approves it.
      await d.createOperator('approver1', ['approver']);
      const policy = await d.keyhub(['--json', 'policy', 'set', 'listener.target_approve', '--required', '1', '--enable'], { as: 'admin' });
      assert.equal(policy.code, 0, policy.stdout + policy.stderr);
      const asked = await d.keyhubJson<{ approval: { id: string } }>(['listener', 'target', 'approve', SITE, 'tgt-b', '--fingerprint', fingerprint]);
      assert.equal((await pg.query(`SELECT state FROM target_keks WHERE listener_id = $1 AND target = 'tgt-b' ORDER BY version DESC LIMIT 1`, [SITE])).rows[0].state, 'requested');
      const view = await d.keyhubJson<{ hash: string; summary: string }>(['approvals', 'show', asked.approval.id], 'approver1');
      assert.match(view.summary, new RegExp(fingerprint));
      const decided = await d.keyhub(['--json', 'approvals', 'approve', asked.approval.id, '--hash', view.hash], { as: 'approver1' });
      assert.equal(decided.code, 0, decided.stdout + decided.stderr);
      const row = await waitFor('the approved target KEK', async () => {
        const r = await pg.query(`SELECT id, version, kcv, state FROM target_keks WHERE listener_id = $1 AND target = 'tgt-b' ORDER BY version DESC LIMIT 1`, [SITE]);
        return r.rows[0].state === 'pending_confirmation' ? (r.rows[0] as { id: string; version: number; kcv: string }) : undefined;
      });
      const ok = { kekId: row.id, version: row.version, kcv: row.kcv };
      process.env.KEYHUB_TEST_SITE_PIN = d.site(SITE).token.pin;
      const own = await Pkcs11Hsm.open({ module: d.hsm.modulePath, tokenLabel: d.site(SITE).token.label, pinEnv: 'KEYHUB_TEST_SITE_PIN', sessions: 1, translateWorker: false });
      try {
        const wrongKcv = ok.kcv === '000000' ? '000001' : '000000';
        const confirm = await new ListenerKeys(own).sign({
          type: MESSAGE_TYPES.targetKekConfirm,
          id: randomUUID(),
          listenerId: SITE,
          issuedAt: new Date().toISOString(),
          target: 'tgt-b',
          kekId: ok.kekId,
          kekVersion: ok.version,
          kcv: wrongKcv,
        });
        await nc.jetstream().publish(subjects.fromListener(SITE, 'target_kek'), encodeEnvelope(confirm), { msgID: randomUUID() });
      } finally {
        await own.close();
      }
      await waitFor('the refused confirmation in the audit trail', async () => {
        const r = await pg.query(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'target_kek.confirmation_failed' AND details->>'kekId' = $1`, [ok.kekId]);
        return r.rows[0].n === 1 ? true : undefined;
      });
      assert.equal((await pg.query(`SELECT state FROM target_keks WHERE id = $1`, [ok.kekId])).rows[0].state, 'pending_confirmation');
      // The site then installs it with the same transport key and confirms the right KCV.
      await d.startListener(SITE);
      await waitFor('tgt-b v2 active', async () => ((await kekOf('tgt-b')).kekId === ok.kekId && (await kekOf('tgt-b')).state === 'active' ? true : undefined));
      assert.deepEqual(
        confirms.filter((k) => k === mismatched.payload.kek.id || k === forged.payload.kek.id),
        [],
      );
      assert.ok(confirms.includes(ok.kekId));
      const rows = await pg.query(`SELECT count(*)::int AS n FROM target_keks WHERE id = ANY($1::uuid[])`, [[mismatched.payload.kek.id, forged.payload.kek.id]]);
      assert.equal(rows.rows[0].n, 0);
    });
  });
});
