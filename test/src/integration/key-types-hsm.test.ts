/**
 * Every key type through the HSM port against real SoftHSM2 tokens, without
 * hub or listener around it: made in a "hub" token, stored under the master
 * key of its class (whose CKA_UNWRAP_TEMPLATE the token enforces), re-wrapped
 * for a site by translateKwp (worker thread and session pool alike), and
 * unwrapped in a "site" token under a root KEK of the HSM-import class. The
 * KCVs agree on both sides; a private key signs in the site token and the
 * signature verifies with Node against the public key made at the hub.
 */
import { strict as assert } from 'node:assert';
import { createCipheriv, createHash, createHmac, createPublicKey, generateKeyPairSync, randomBytes, verify as nodeVerify } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import {
  HUB_KEY_STORE_POLICY,
  HUB_PRIVATE_STORE_POLICY,
  HUB_SECRET_STORE_POLICY,
  cmacSubkey,
  KeyhubError,
  Pkcs11Hsm,
  secretKcv,
  SITE_IMPORT_KEK_UNWRAP_TEMPLATE,
  spkiKcv,
  TRANSIENT_KEY_POLICY,
  type KeyHandle,
  type KeyPairSpec,
  type SecretKeyType,
  type WrappedAesKey,
  type WrappedKeyType,
} from '@keyhub/shared';
import { createSoftHsm, pkcs11Tool, type SoftHsmEnv } from '../env';

/** RFC 5649 (AES-KWP) by OpenSSL through Node: blobs made outside the token, from key values the test knows. */
function nodeKwp(kek: Buffer, key: Buffer): Buffer {
  const c = createCipheriv('id-aes256-wrap-pad', kek, Buffer.from('A65959A6', 'hex'));
  return Buffer.concat([c.update(key), c.final()]);
}

function nodeEcb(alg: string, key: Buffer, block: Buffer): Buffer {
  const c = createCipheriv(alg, key, null).setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}

interface Made {
  name: string;
  keyType: WrappedKeyType;
  length: number;
  kcv: string;
  blob: Buffer;
  spki?: Buffer;
}

const SECRETS: Array<{ name: string; type: SecretKeyType; length: number; kcv: 'aes-cmac' | 'tdes-ecb' | 'hmac-sha256' }> = [
  { name: 'AES-128', type: 'aes', length: 16, kcv: 'aes-cmac' },
  { name: 'TDES-2KEY', type: 'des2', length: 16, kcv: 'tdes-ecb' },
  { name: 'TDES-3KEY', type: 'des3', length: 24, kcv: 'tdes-ecb' },
  { name: 'HMAC-SHA384', type: 'generic', length: 48, kcv: 'hmac-sha256' },
];
const PAIRS: Array<{ name: string; spec: KeyPairSpec }> = [
  { name: 'RSA-2048', spec: { type: 'rsa', bits: 2048 } },
  { name: 'EC-P256', spec: { type: 'ec', curve: 'P-256' } },
  { name: 'EC-P384', spec: { type: 'ec', curve: 'P-384' } },
  { name: 'EC-P521', spec: { type: 'ec', curve: 'P-521' } },
];

describe('key types through the HSM port: make, store by class, translate, import, prove', function () {
  this.timeout(60_000);
  let env: SoftHsmEnv;
  let hub: Pkcs11Hsm;
  let hubPool: Pkcs11Hsm;
  let site: Pkcs11Hsm;
  const stores = {} as Record<'aes' | 'secret' | 'private', KeyHandle>;
  const made: Made[] = [];

  before(async () => {
    env = await createSoftHsm(['kt-hub', 'kt-site']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_KT_HUB_PIN = env.tokens[0].pin;
    process.env.KEYHUB_KT_SITE_PIN = env.tokens[1].pin;
    hub = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'kt-hub', pinEnv: 'KEYHUB_KT_HUB_PIN' });
    hubPool = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'kt-hub', pinEnv: 'KEYHUB_KT_HUB_PIN', translateWorker: false });
    site = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'kt-site', pinEnv: 'KEYHUB_KT_SITE_PIN' });
    const id = (l: string) => Buffer.from(l);
    stores.aes = await hub.generateAesKey(32, { ...HUB_KEY_STORE_POLICY, label: 'hmk', id: id('hmk') });
    stores.secret = await hub.generateAesKey(32, { ...HUB_SECRET_STORE_POLICY, label: 'hmk-secret', id: id('hmk-secret') });
    stores.private = await hub.generateAesKey(32, { ...HUB_PRIVATE_STORE_POLICY, label: 'hmk-private', id: id('hmk-private') });
  });

  after(async () => {
    await site?.close();
    await hubPool?.close();
    await hub?.close();
    await env?.cleanup();
  });

  it('makes every type in the hub token and stores it under the master key of its class', async () => {
    for (const s of SECRETS) {
      const h = await hub.generateSecretKey(s.type, s.length, { token: false, extractable: true, sign: s.kcv !== 'tdes-ecb', encrypt: s.kcv === 'tdes-ecb' });
      const kcv = await secretKcv(hub, h, s.kcv);
      const blob = await hub.wrapKwp(s.type === 'aes' ? stores.aes : stores.secret, h);
      await hub.destroy(h);
      made.push({ name: s.name, keyType: s.type, length: s.length, kcv, blob });
    }
    for (const p of PAIRS) {
      const pair = await hub.generateKeyPair(p.spec, { private: { token: false, extractable: true }, public: { token: false, verify: true } });
      const spki = await hub.publicKeySpki(pair.publicKey);
      const blob = await hub.wrapKwp(stores.private, pair.privateKey);
      await hub.destroy(pair.privateKey);
      await hub.destroy(pair.publicKey);
      made.push({ name: p.name, keyType: p.spec.type, length: 0, kcv: spkiKcv(spki), blob, spki });
    }
    assert.equal(made.length, SECRETS.length + PAIRS.length);
  });

  it('each store unwraps only its class, as the token enforces (CKA_UNWRAP_TEMPLATE): a secret never comes out of the private store, nor a private key out of a secret store', async () => {
    const inconsistent = (e: unknown) => KeyhubError.is(e) && e.ckr === 'CKR_TEMPLATE_INCONSISTENT';
    // Wrapping is not what the template restricts: blobs of the wrong class under each store, made on purpose.
    const aes = await hub.generateAesKey(16, { token: false, extractable: true });
    const pair = await hub.generateKeyPair({ type: 'ec', curve: 'P-256' }, { private: { token: false, extractable: true }, public: { token: false } });
    const aesUnderPrivate = await hub.wrapKwp(stores.private, aes);
    const ecUnderSecret = await hub.wrapKwp(stores.secret, pair.privateKey);
    const ecUnderAes = await hub.wrapKwp(stores.aes, pair.privateKey);
    await assert.rejects(hub.unwrapKwpAs(stores.private, aesUnderPrivate, 'aes', 16, TRANSIENT_KEY_POLICY), inconsistent);
    await assert.rejects(hub.unwrapKwpAs(stores.secret, ecUnderSecret, 'ec', 32, TRANSIENT_KEY_POLICY), inconsistent);
    await assert.rejects(hub.unwrapKwpAs(stores.aes, ecUnderAes, 'ec', 32, TRANSIENT_KEY_POLICY), inconsistent);
    // The right class with a usage, or not sensitive: refused as well.
    const rsa = made.find((m) => m.keyType === 'rsa')!;
    await assert.rejects(hub.unwrapKwpAs(stores.private, rsa.blob, 'rsa', 256, { ...TRANSIENT_KEY_POLICY, sign: true }), inconsistent);
    await assert.rejects(hub.unwrapKwpAs(stores.private, rsa.blob, 'rsa', 256, { ...TRANSIENT_KEY_POLICY, sensitive: false }), inconsistent);
    const ok = await hub.unwrapKwpAs(stores.private, rsa.blob, 'rsa', 256, TRANSIENT_KEY_POLICY);
    const info = await hub.keyInfo(ok);
    assert.deepEqual([info.class, info.keyType, info.sensitive, info.sign, info.decrypt], ['private', 'rsa', true, false, false]);
    for (const h of [ok, aes, pair.privateKey, pair.publicKey]) await hub.destroy(h);
  });

  it('each KCV method, computed in the token, equals the same method computed by Node from key values the test knows (also the published TDES vector)', async () => {
    // A known KEK planted with pkcs11-tool; blobs made by Node's RFC 5649.
    const kekValue = randomBytes(32);
    const kekFile = path.join(env.dir, 'kt-kek.bin');
    await writeFile(kekFile, kekValue);
    const t = env.tokens[0];
    const r = await pkcs11Tool(env, [
      '--token-label',
      t.label,
      '--login',
      '--pin',
      t.pin,
      '--write-object',
      kekFile,
      '--type',
      'secrkey',
      '--key-type',
      'AES:32',
      '--label',
      'kt-kek',
      '--id',
      '7e',
      '--usage-wrap',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [kek] = await hub.findKeys({ class: 'secret', label: 'kt-kek' });
    const kcv = (b: Buffer) => b.subarray(0, 3).toString('hex');
    const probe = (type: WrappedKeyType, value: Buffer, usage: 'sign' | 'encrypt') =>
      hub.unwrapKwpAs(kek, nodeKwp(kekValue, value), type, value.length, { token: false, sensitive: true, extractable: false, [usage]: true });

    const tdes2 = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
    assert.equal(await secretKcv(hub, await probe('des2', tdes2, 'encrypt'), 'tdes-ecb'), '08d7b4', 'published KCV of the classic TDES test key');
    const tdes3 = randomBytes(24);
    assert.equal(await secretKcv(hub, await probe('des3', tdes3, 'encrypt'), 'tdes-ecb'), kcv(nodeEcb('des-ede3-ecb', tdes3, Buffer.alloc(8))));
    for (const len of [32, 48, 64]) {
      const secret = randomBytes(len);
      assert.equal(await secretKcv(hub, await probe('generic', secret, 'sign'), 'hmac-sha256'), kcv(createHmac('sha256', secret).update(Buffer.alloc(16)).digest()), `generic ${len}`);
    }
    const aes = randomBytes(24);
    const l = nodeEcb('aes-192-ecb', aes, Buffer.alloc(16));
    assert.equal(await secretKcv(hub, await probe('aes', aes, 'sign'), 'aes-cmac'), kcv(nodeEcb('aes-192-ecb', aes, cmacSubkey(l))));

    // A private key made by Node (PKCS#8) unwraps as CKO_PRIVATE_KEY and signs for its own public key only.
    for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
      const pair = generateKeyPairSync('ec', { namedCurve: curve });
      const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
      const h = await hub.unwrapKwpAs(kek, nodeKwp(kekValue, pkcs8), 'ec', 0, { token: false, sensitive: true, extractable: false, sign: true });
      const sig = await hub.signWithPrivateKey(h, 'ec', Buffer.from('challenge'));
      assert.ok(nodeVerify('sha256', Buffer.from('challenge'), { key: pair.publicKey, dsaEncoding: 'ieee-p1363' }, sig), curve);
      const stranger = generateKeyPairSync('ec', { namedCurve: curve }).publicKey;
      assert.equal(nodeVerify('sha256', Buffer.from('challenge'), { key: stranger, dsaEncoding: 'ieee-p1363' }, sig), false);
      const spki = pair.publicKey.export({ format: 'der', type: 'spki' });
      assert.equal(spkiKcv(spki), createHash('sha256').update(spki).digest('hex').slice(0, 6));
    }
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rh = await hub.unwrapKwpAs(kek, nodeKwp(kekValue, rsa.privateKey.export({ format: 'der', type: 'pkcs8' })), 'rsa', 0, { token: false, sensitive: true, extractable: false, sign: true });
    assert.ok(nodeVerify('sha256', Buffer.from('challenge'), rsa.publicKey, await hub.signWithPrivateKey(rh, 'rsa', Buffer.from('challenge'))));
  });

  for (const which of ['worker', 'pool'] as const) {
    it(`translateKwp (${which}) re-wraps every type under a KEK; unwrapped under it, KCVs agree and private keys sign`, async () => {
      const h = which === 'worker' ? hub : hubPool;
      // The KEK, stored under a plain KEK store; unwrapped under `kek` below as a site would (the e2e test crosses tokens).
      const kekStore = await h.generateAesKey(32, { token: false, wrap: true, unwrap: true });
      const kek = await h.generateAesKey(32, { token: false, extractable: true, wrap: true, unwrap: true, unwrapTemplate: SITE_IMPORT_KEK_UNWRAP_TEMPLATE });
      const wrappedKek = await h.wrapKwp(kekStore, kek);
      const keks: WrappedAesKey[] = [{ blob: wrappedKek, lengthBytes: 32 }];
      const keys: WrappedAesKey[] = made.map((m) => ({ blob: m.blob, lengthBytes: m.length || 256, keyType: m.keyType }));
      const pairs = new Uint32Array(made.flatMap((_, i) => [0, i]));
      const out = await h.translateKwp({ unwrappingKey: stores.aes, kekUnwrappingKey: kekStore, secretUnwrappingKey: stores.secret, privateUnwrappingKey: stores.private, keks, keys, pairs });
      assert.equal(out.length, made.length);
      for (let i = 0; i < made.length; i++) {
        const m = made[i];
        const probe = await h.unwrapKwpAs(kek, out[i], m.keyType, m.length || 256, {
          token: false,
          sensitive: true,
          extractable: false,
          sign: m.keyType !== 'des2' && m.keyType !== 'des3',
          encrypt: m.keyType === 'des2' || m.keyType === 'des3' || m.keyType === 'aes',
        });
        try {
          if (m.spki) {
            const sig = await h.signWithPrivateKey(probe, m.keyType as 'rsa' | 'ec', Buffer.from('challenge'));
            const key = createPublicKey({ key: m.spki, format: 'der', type: 'spki' });
            const ok = m.keyType === 'rsa' ? nodeVerify('sha256', Buffer.from('challenge'), key, sig) : nodeVerify('sha256', Buffer.from('challenge'), { key, dsaEncoding: 'ieee-p1363' }, sig);
            assert.ok(ok, `${m.name}: signature by the unwrapped private key verifies`);
          } else {
            const method = m.keyType === 'aes' ? 'aes-cmac' : m.keyType === 'generic' ? 'hmac-sha256' : 'tdes-ecb';
            assert.equal(await secretKcv(h, probe, method), m.kcv, `${m.name}: KCV after translation`);
          }
        } finally {
          await h.destroy(probe);
        }
      }
    });
  }

  it('a site root KEK of the import class takes secret and private keys, sensitive and never extractable only', async () => {
    const pair = await site.generateKeyPair({ type: 'ec', curve: 'P-256' }, { private: { token: false, extractable: true }, public: { token: false, verify: true } });
    const kekWrap = await site.generateAesKey(32, { token: false, wrap: true, unwrap: true, unwrapTemplate: SITE_IMPORT_KEK_UNWRAP_TEMPLATE });
    const blob = await site.wrapKwp(kekWrap, pair.privateKey);
    const ok = await site.unwrapKwpAs(kekWrap, blob, 'ec', 32, { token: false, sensitive: true, extractable: false, sign: true });
    const info = await site.keyInfo(ok);
    // The public key made again from its SPKI, as the target does: same SPKI, verify only.
    const spki = await site.publicKeySpki(pair.publicKey);
    const pub = await site.createPublicKey(spki, { token: false, verify: true });
    assert.ok((await site.publicKeySpki(pub)).equals(spki));
    const pubInfo = await site.keyInfo(pub);
    assert.deepEqual([pubInfo.class, pubInfo.verify, pubInfo.encrypt, pubInfo.wrap], ['public', true, false, false]);
    assert.deepEqual([info.class, info.keyType, info.sensitive, info.extractable, info.sign], ['private', 'ec', true, false, true]);
    await assert.rejects(site.unwrapKwpAs(kekWrap, blob, 'ec', 32, { token: false, sensitive: true, extractable: true, sign: true }), (e: unknown) => KeyhubError.is(e));
  });
});
