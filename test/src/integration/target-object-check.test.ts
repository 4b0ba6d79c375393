/**
 * The PKCS#11 target against a SoftHSM2 token: a root KEK installed as the
 * listener installs it (transport key destroyed after), keys imported, and
 * `already_present` confirmed only for the very key with the very policy.
 * Someone with the site PIN plants an object under the key's CKA_ID (another
 * value, or the same value with other usages): the import reports
 * TARGET_OBJECT_MISMATCH and never confirms it.
 */
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import type { KeyUsage } from '@keyhub/protocol';
import { aesKcv, KeyhubError, Pkcs11Hsm, type KeyHandle } from '@keyhub/shared';
import { ListenerKeys, TRANSPORT_LABEL } from '@keyhub/listener/dist/listener-keys';
import { objectId, Pkcs11Target } from '@keyhub/listener/dist/targets/pkcs11-target';
import type { ImportRequest } from '@keyhub/listener/dist/targets/target';
import { createSoftHsm, type SoftHsmEnv } from '../env';

describe('PKCS#11 target: root KEK install, already_present checked in the token', function () {
  this.timeout(60_000);
  let env: SoftHsmEnv;
  let hub: Pkcs11Hsm;
  let site: Pkcs11Hsm;
  let keys: ListenerKeys;
  let target: Pkcs11Target;
  let rootKek: KeyHandle;

  before(async () => {
    env = await createSoftHsm(['check-hub', 'check-site']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_CHECK_HUB_PIN = env.tokens[0].pin;
    process.env.KEYHUB_CHECK_SITE_PIN = env.tokens[1].pin;
    hub = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'check-hub', pinEnv: 'KEYHUB_CHECK_HUB_PIN' });
    site = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'check-site', pinEnv: 'KEYHUB_CHECK_SITE_PIN' });
    keys = new ListenerKeys(site);
    await keys.ensureEnrollmentKeys(2048);
    target = new Pkcs11Target('hsm', site, keys, 'keyhub:');
    rootKek = await hub.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
  });

  after(async () => {
    await site?.close();
    await hub?.close();
    await env?.cleanup();
  });

  it('installs the root KEK, then destroys the transport private key (the public half stays for the fingerprint); a second delivery is "present"', async () => {
    const fingerprint = await keys.enrollmentFingerprint('site-x');
    const blob = await hub.wrapRsaOaep(await hub.importRsaWrappingKey(await keys.transportSpki()), rootKek, 'sha1');
    const kcv = await aesKcv(hub, rootKek);
    assert.equal(await keys.unwrapRootKek(blob, 'sha1', 'kek-1', 1, (h) => aesKcv(site, h), kcv), 'stored');
    assert.equal((await site.findKeys({ class: 'private', label: TRANSPORT_LABEL })).length, 0);
    assert.equal((await site.findKeys({ class: 'public', label: TRANSPORT_LABEL })).length, 1);
    assert.equal(await keys.enrollmentFingerprint('site-x'), fingerprint);
    assert.equal(await keys.unwrapRootKek(blob, 'sha1', 'kek-1', 1, (h) => aesKcv(site, h), kcv), 'present');
    const info = await site.keyInfo((await keys.findKek('kek-1', 1))!);
    assert.deepEqual([info.token, info.sensitive, info.extractable, info.unwrap, info.wrap, info.encrypt, info.decrypt], [true, true, false, true, false, false, false]);
  });

  async function packageFor(usages: KeyUsage[]): Promise<{ req: ImportRequest; key: KeyHandle }> {
    const key = await hub.generateAesKey(32, { token: false, extractable: true, sign: true });
    const req: ImportRequest = {
      key: { id: randomUUID(), name: `k-${usages.join('-')}`, version: 1, algorithm: 'AES-256', length: 32, usages, exportable: false, kcv: await aesKcv(hub, key) },
      wrapped: { kekId: 'kek-1', kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(rootKek, key) },
    };
    return { req, key };
  }

  const mismatch = (e: unknown) => KeyhubError.is(e, 'TARGET_OBJECT_MISMATCH');

  for (const usages of [['encrypt', 'decrypt'], ['sign', 'verify'], ['decrypt'], ['verify']] as KeyUsage[][]) {
    it(`usages ${usages.join('+')}: imported, then already_present only after the object shows it is the same key`, async () => {
      const { req } = await packageFor(usages);
      assert.deepEqual(await target.import(req), { outcome: 'imported', kcv: req.key.kcv });
      if (usages.includes('encrypt') || usages.includes('sign') || usages.includes('decrypt')) {
        assert.deepEqual(await target.import(req), { outcome: 'already_present', kcv: req.key.kcv });
      } else {
        // Verify-only: the token cannot show this object's KCV without it being changed; never confirmed.
        await assert.rejects(target.import(req), mismatch);
      }
    });
  }

  it('an object planted under the CKA_ID with another value, or with the same value and other usages, is a TARGET_OBJECT_MISMATCH, not already_present', async () => {
    const { req } = await packageFor(['encrypt', 'decrypt']);
    assert.equal((await target.import(req)).outcome, 'imported');
    const id = objectId({ keyId: req.key.id, version: 1 });
    const [real] = await site.findKeys({ class: 'secret', id, token: true });
    // Another key under the same id and label, with the same usages.
    await site.destroy(real);
    await site.generateAesKey(32, { token: true, id, label: `keyhub:${req.key.name}.v1`, encrypt: true, decrypt: true });
    await assert.rejects(target.import(req), (e: unknown) => mismatch(e) && /KCV/.test((e as Error).message));
    // The same key, unwrapped from the package by the PIN holder, with more usages than the package grants.
    for (const h of await site.findKeys({ class: 'secret', id, token: true })) await site.destroy(h);
    await site.unwrapKwp((await keys.findKek('kek-1', 1))!, req.wrapped.blob, 32, { token: true, id, encrypt: true, decrypt: true, sign: true });
    await assert.rejects(target.import(req), (e: unknown) => mismatch(e) && /CKA_SIGN/.test((e as Error).message));
  });

  it('a package whose usages enable wrap/decrypt never reaches the token (KEY_USAGE_CONFLICT)', async () => {
    for (const usages of [
      ['wrap', 'decrypt'],
      ['unwrap', 'encrypt'],
    ] as KeyUsage[][]) {
      const { req } = await packageFor(usages);
      await assert.rejects(target.import(req), (e: unknown) => KeyhubError.is(e, 'KEY_USAGE_CONFLICT'));
      assert.equal((await site.findKeys({ class: 'secret', id: objectId({ keyId: req.key.id, version: 1 }) })).length, 0);
    }
  });

  it('an exportable key is refused by the token itself: the root KEK of the HSM-import class unwraps only non-extractable keys', async () => {
    const { req } = await packageFor(['encrypt', 'decrypt']);
    await assert.rejects(target.import({ ...req, key: { ...req.key, exportable: true } }), (e: unknown) => KeyhubError.is(e, 'TARGET_IMPORT_FAILED') && e.ckr === 'CKR_TEMPLATE_INCONSISTENT');
  });
});
