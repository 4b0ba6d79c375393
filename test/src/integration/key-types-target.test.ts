/**
 * The PKCS#11 target with every class of key, in process against SoftHSM2
 * tokens (the end-to-end path is key-types-push.test.ts): imported once,
 * already_present only when the object shows it is the same key, and the
 * refusals that leave nothing in the token: a private key that does not sign
 * for the package's public key (KEY_PAIR_MISMATCH), a public key of another
 * size (KEY_LENGTH_INVALID), a usage the type cannot have
 * (KEY_USAGE_INVALID), a wrong KCV (KCV_MISMATCH), a planted public key.
 */
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { KEY_ALGORITHM_INFO, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { aesKcv, KeyhubError, Pkcs11Hsm, secretKcv, spkiKcv, type KeyHandle, type SecretKcvMethod, type SecretKeyType } from '@keyhub/shared';
import { ListenerKeys } from '@keyhub/listener/dist/listener-keys';
import { objectId, Pkcs11Target } from '@keyhub/listener/dist/targets/pkcs11-target';
import type { ImportRequest } from '@keyhub/listener/dist/targets/target';
import { createSoftHsm, type SoftHsmEnv } from '../env';

describe('PKCS#11 target: every class of key imported, proven and refused in the token', function () {
  this.timeout(60_000);
  let env: SoftHsmEnv;
  let hub: Pkcs11Hsm;
  let site: Pkcs11Hsm;
  let target: Pkcs11Target;
  let rootKek: KeyHandle;

  before(async () => {
    env = await createSoftHsm(['ktt-hub', 'ktt-site']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_KTT_HUB_PIN = env.tokens[0].pin;
    process.env.KEYHUB_KTT_SITE_PIN = env.tokens[1].pin;
    hub = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'ktt-hub', pinEnv: 'KEYHUB_KTT_HUB_PIN' });
    site = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'ktt-site', pinEnv: 'KEYHUB_KTT_SITE_PIN' });
    const keys = new ListenerKeys(site);
    await keys.ensureEnrollmentKeys(2048);
    target = new Pkcs11Target('hsm', site, keys, 'keyhub:');
    // The root KEK as enrollment installs it (RSA-OAEP under the transport key, then the import class).
    rootKek = await hub.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const blob = await hub.wrapRsaOaep(await hub.importRsaWrappingKey(await keys.transportSpki()), rootKek, 'sha1');
    assert.equal(await keys.unwrapRootKek(blob, 'sha1', 'kek-1', 1, (h) => aesKcv(site, h), await aesKcv(hub, rootKek)), 'stored');
  });

  after(async () => {
    await site?.close();
    await hub?.close();
    await env?.cleanup();
  });

  /** A package as the hub issues one: the key made in the hub token, its KCV there, wrapped under the root KEK. */
  async function packageFor(algorithm: KeyAlgorithm, usages: KeyUsage[]): Promise<ImportRequest> {
    const info = KEY_ALGORITHM_INFO[algorithm];
    const key = { id: randomUUID(), name: `k-${algorithm.toLowerCase()}`, version: 1, algorithm, length: info.lengthBytes, usages, exportable: false };
    if (info.keyClass === 'secret') {
      const h = await hub.generateSecretKey(info.keyType as SecretKeyType, info.lengthBytes, { token: false, extractable: true, sign: info.kcv !== 'tdes-ecb', encrypt: info.kcv === 'tdes-ecb' });
      const kcv = await secretKcv(hub, h, info.kcv as SecretKcvMethod);
      return { key: { ...key, kcv }, wrapped: { kekId: 'kek-1', kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(rootKek, h) } };
    }
    const spec = info.keyType === 'rsa' ? ({ type: 'rsa', bits: info.rsaBits! } as const) : ({ type: 'ec', curve: info.curve! } as const);
    const pair = await hub.generateKeyPair(spec, { private: { token: false, extractable: true }, public: { token: false } });
    const spki = await hub.publicKeySpki(pair.publicKey);
    return {
      key: { ...key, kcv: spkiKcv(spki), publicKey: spki.toString('base64') },
      wrapped: { kekId: 'kek-1', kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(rootKek, pair.privateKey) },
    };
  }

  const objectsOf = (req: ImportRequest) => site.findKeys({ id: objectId({ keyId: req.key.id, version: req.key.version }), token: true });
  const code = (c: string) => (e: unknown) => KeyhubError.is(e, c as never);

  const CASES: Array<[KeyAlgorithm, KeyUsage[]]> = [
    ['TDES-2KEY', ['encrypt', 'decrypt']],
    ['TDES-3KEY', ['encrypt']],
    ['HMAC-SHA512', ['sign', 'verify']],
    ['GENERIC-256', ['sign', 'derive']],
    ['RSA-2048', ['sign', 'verify', 'encrypt']],
    ['EC-P384', ['sign', 'verify']],
  ];
  for (const [algorithm, usages] of CASES) {
    it(`${algorithm} (${usages.join('+')}): imported with the hub's KCV, then already_present after the object proves it is the same key`, async () => {
      const req = await packageFor(algorithm, usages);
      assert.deepEqual(await target.import(req), { outcome: 'imported', kcv: req.key.kcv });
      assert.deepEqual(await target.import(req), { outcome: 'already_present', kcv: req.key.kcv });
      const infos = await Promise.all((await objectsOf(req)).map((h) => site.keyInfo(h)));
      const pair = KEY_ALGORITHM_INFO[algorithm].keyClass === 'private';
      assert.deepEqual(infos.map((i) => i.class).sort(), pair ? ['private', 'public'] : ['secret']);
      for (const i of infos.filter((x) => x.class !== 'public')) assert.deepEqual([i.sensitive, i.extractable, i.sign, i.decrypt], [true, false, usages.includes('sign'), usages.includes('decrypt')]);
      for (const i of infos.filter((x) => x.class === 'public')) assert.deepEqual([i.verify, i.encrypt, i.wrap], [usages.includes('verify'), usages.includes('encrypt'), false]);
    });
  }

  it('the inventory (read again as after a restart) lists each imported version once, key pairs by their private key', async () => {
    const fresh = new Pkcs11Target('hsm', site, new ListenerKeys(site), 'keyhub:');
    const items = await fresh.inventory();
    const byName = new Map(items.map((i) => [i.label, i]));
    assert.equal(items.length, byName.size, 'one item per version');
    for (const [algorithm] of CASES) {
      const item = byName.get(`keyhub:k-${algorithm.toLowerCase()}.v1`);
      assert.ok(item, algorithm);
      assert.equal(item.algorithm, KEY_ALGORITHM_INFO[algorithm].keyType.toUpperCase());
    }
  });

  it('a key pair whose public key has gone missing gets it back on the next delivery; a planted other public key is a mismatch', async () => {
    const req = await packageFor('EC-P256', ['sign', 'verify']);
    await target.import(req);
    const [pub] = (await Promise.all((await objectsOf(req)).map(async (h) => ({ h, i: await site.keyInfo(h) })))).filter((x) => x.i.class === 'public');
    await site.destroy(pub.h);
    assert.equal((await target.import(req)).outcome, 'already_present');
    assert.equal((await objectsOf(req)).length, 2, 'the public key is there again');
    const [again] = (await Promise.all((await objectsOf(req)).map(async (h) => ({ h, i: await site.keyInfo(h) })))).filter((x) => x.i.class === 'public');
    await site.destroy(again.h);
    const stranger = await site.generateKeyPair({ type: 'ec', curve: 'P-256' }, { private: { token: false }, public: { token: false } });
    await site.createPublicKey(await site.publicKeySpki(stranger.publicKey), { token: true, id: objectId({ keyId: req.key.id, version: 1 }), verify: true });
    await assert.rejects(target.import(req), code('TARGET_OBJECT_MISMATCH'));
  });

  it("a private key that does not sign for the package's public key is KEY_PAIR_MISMATCH, and nothing reaches the token", async () => {
    const a = await packageFor('EC-P256', ['sign', 'verify']);
    const b = await packageFor('EC-P256', ['sign', 'verify']);
    // b's private key with a's public key and KCV: what a swapped public key in the database would give.
    const forged: ImportRequest = { key: a.key, wrapped: b.wrapped };
    await assert.rejects(target.import(forged), code('KEY_PAIR_MISMATCH'));
    assert.equal((await objectsOf(forged)).length, 0);
    const rsa = await packageFor('RSA-2048', ['sign']);
    const rsa2 = await packageFor('RSA-2048', ['sign']);
    await assert.rejects(target.import({ key: rsa.key, wrapped: rsa2.wrapped }), code('KEY_PAIR_MISMATCH'));
    assert.equal((await objectsOf(rsa)).length, 0);
  });

  it('refuses a public key of another size, a usage the type cannot have, a wrong KCV, before anything reaches the token', async () => {
    const p256 = await packageFor('EC-P256', ['sign']);
    const p384 = await packageFor('EC-P384', ['sign']);
    await assert.rejects(target.import({ ...p256, key: { ...p256.key, publicKey: p384.key.publicKey } }), code('KEY_LENGTH_INVALID'));
    await assert.rejects(target.import({ ...p256, key: { ...p256.key, usages: ['sign', 'encrypt'] } }), code('KEY_USAGE_INVALID'));
    const hmac = await packageFor('HMAC-SHA256', ['sign']);
    await assert.rejects(target.import({ ...hmac, key: { ...hmac.key, usages: ['decrypt'] } }), code('KEY_USAGE_INVALID'));
    const tdes = await packageFor('TDES-3KEY', ['encrypt']);
    await assert.rejects(target.import({ ...tdes, key: { ...tdes.key, kcv: tdes.key.kcv === '000000' ? '111111' : '000000' } }), code('KCV_MISMATCH'));
    // A TDES blob delivered as an AES-192 key (same length): the AES KCV of those bytes is not the package's.
    await assert.rejects(target.import({ ...tdes, key: { ...tdes.key, algorithm: 'AES-192' } }), code('KCV_MISMATCH'));
    for (const r of [p256, hmac, tdes]) assert.equal((await objectsOf(r)).length, 0);
  });
});
