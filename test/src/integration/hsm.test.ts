import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { aesKcv, KeyhubError, Pkcs11Hsm, type KeyPolicy } from '@keyhub/shared';
import { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import { createSoftHsm, pkcs11Tool, run, type SoftHsmEnv } from '../env';

/** Python's `cryptography`: an implementation of RFC 5649 and CMAC independent of OpenSSL's CLI and of SoftHSM. */
async function python(code: string, ...args: string[]): Promise<string> {
  const r = await run('python3', ['-c', code, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}
const PY_WRAP = 'import sys;from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding as w;print(w(bytes.fromhex(sys.argv[1]),bytes.fromhex(sys.argv[2])).hex())';
const PY_CMAC = 'import sys;from cryptography.hazmat.primitives.cmac import CMAC;from cryptography.hazmat.primitives.ciphers import algorithms;c=CMAC(algorithms.AES(bytes.fromhex(sys.argv[1])));c.update(bytes(16));print(c.finalize()[:3].hex())';

describe('PKCS#11 adapter against SoftHSM2', function () {
  this.timeout(60_000);
  let env: SoftHsmEnv;
  let hsm: Pkcs11Hsm;

  before(async () => {
    env = await createSoftHsm(['adapter']);
    // One C_Initialize per process reads SOFTHSM2_CONF: set it before the first open.
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_TEST_ADAPTER_PIN = env.tokens[0].pin;
    hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN' });
  });

  after(async () => {
    await hsm?.close();
    await env?.cleanup();
  });

  async function plant(label: string, id: string, value: Buffer, flags: string[]): Promise<void> {
    const file = path.join(env.dir, `${label}.bin`);
    await writeFile(file, value);
    const t = env.tokens[0];
    const r = await pkcs11Tool(env, ['--token-label', t.label, '--login', '--pin', t.pin, '--write-object', file, '--type', 'secrkey', '--key-type', `AES:${value.length}`, '--label', label, '--id', id, ...flags]);
    assert.equal(r.code, 0, r.stderr);
  }

  it('wraps with AES-KWP byte-identically to RFC 5649 as implemented by Python cryptography', async () => {
    const kek = randomBytes(32);
    const key = randomBytes(32);
    await plant('kwp-kek', '01', kek, ['--usage-wrap']);
    await plant('kwp-key', '02', key, ['--extractable']);
    const [kekHandle] = await hsm.findKeys({ label: 'kwp-kek', class: 'secret' });
    const [keyHandle] = await hsm.findKeys({ label: 'kwp-key', class: 'secret' });
    const blob = await hsm.wrapKwp(kekHandle, keyHandle);
    assert.equal(blob.toString('hex'), await python(PY_WRAP, kek.toString('hex'), key.toString('hex')));
  });

  it('unwraps a blob made by Python and computes the same AES-CMAC KCV in the HSM', async () => {
    const kek = randomBytes(32);
    await plant('unwrap-kek', '03', kek, ['--usage-wrap']);
    const [kekHandle] = await hsm.findKeys({ label: 'unwrap-kek', class: 'secret' });
    for (const length of [16, 24, 32]) {
      const key = randomBytes(length);
      const blob = Buffer.from(await python(PY_WRAP, kek.toString('hex'), key.toString('hex')), 'hex');
      const handle = await hsm.unwrapKwp(kekHandle, blob, length, { token: false, sign: true });
      assert.equal(await aesKcv(hsm, handle), await python(PY_CMAC, key.toString('hex')), `AES-${length * 8}`);
      await hsm.destroy(handle);
    }
  });

  it('fails a tampered blob and a wrong length with stable codes, keeping the CKR code', async () => {
    const kek = await hsm.generateAesKey(32, { token: false, wrap: true, unwrap: true });
    const key = await hsm.generateAesKey(32, { token: false, extractable: true });
    const blob = await hsm.wrapKwp(kek, key);
    blob[10] ^= 0x01;
    await assert.rejects(hsm.unwrapKwp(kek, blob, 32, { token: false }), (e: unknown) => KeyhubError.is(e, 'HSM_ERROR') && typeof e.ckr === 'string' && e.ckr.startsWith('CKR_'));
    await assert.rejects(hsm.unwrapKwp(kek, blob, 20, { token: false }), (e: unknown) => KeyhubError.is(e, 'KEY_LENGTH_INVALID'));
  });

  it('keeps KEKs from encrypting: a wrap/unwrap key refuses C_Encrypt-style use', async () => {
    const kek = await hsm.generateAesKey(32, { token: false, wrap: true, unwrap: true });
    const info = await hsm.keyInfo(kek);
    assert.equal(info.encrypt, false);
    assert.equal(info.decrypt, false);
    assert.equal(info.extractable, false);
    assert.equal(info.sensitive, true);
    await assert.rejects(hsm.aesCmac(kek, Buffer.alloc(16)), (e: unknown) => KeyhubError.is(e, 'HSM_ERROR') && e.ckr === 'CKR_KEY_FUNCTION_NOT_PERMITTED');
  });

  it('copies a token key into a session object that keeps its protection and is the same key', async () => {
    const master = await hsm.generateAesKey(32, { token: true, label: 'copy-source', id: Buffer.from('copy-source'), wrap: true, unwrap: true });
    const copy = await hsm.copyToSession(master);
    const info = await hsm.keyInfo(copy);
    assert.equal(info.token, false);
    assert.equal(info.extractable, false);
    assert.equal(info.sensitive, true);
    assert.equal(info.private, true);
    assert.ok(info.wrap && info.unwrap && !info.encrypt && !info.decrypt);
    const key = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    const blob = await hsm.wrapKwp(copy, key);
    assert.deepEqual(blob, await hsm.wrapKwp(master, key), 'the copy wraps exactly as the token object');
    const back = await hsm.unwrapKwp(master, blob, 32, { token: false, sign: true });
    assert.equal(await aesKcv(hsm, back), await aesKcv(hsm, key));
    await hsm.destroy(copy);
    await hsm.wrapKwp(master, key);
    const tokenOnly = await hsm.findKeys({ class: 'secret', label: 'copy-source' });
    assert.deepEqual(tokenOnly, [master], 'only the token object is left');
  });

  it('creates transient objects without CKA_PRIVATE only when asked, still sensitive', async () => {
    const kek = await hsm.generateAesKey(32, { token: false, wrap: true, unwrap: true, private: false });
    const kekInfo = await hsm.keyInfo(kek);
    assert.equal(kekInfo.private, false);
    assert.equal(kekInfo.sensitive, true);
    assert.equal(kekInfo.extractable, false);
    assert.equal((await hsm.keyInfo(await hsm.generateAesKey(32, { token: false, wrap: true }))).private, true, 'private by default');
    const key = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    const unwrapped = await hsm.unwrapKwp(kek, await hsm.wrapKwp(kek, key), 32, { token: false, extractable: true, private: false });
    const info = await hsm.keyInfo(unwrapped);
    assert.equal(info.private, false);
    assert.equal(info.sensitive, true);
  });

  it("the hub keyring works through the master key's session copy, and through the token object when a token refuses the copy", async () => {
    await HubKeyring.ensure(hsm);
    // Records which key the keyring hands to C_WrapKey / C_UnwrapKey, and the copy it made.
    const copies: Buffer[] = [];
    const used: Buffer[] = [];
    const watching = new Proxy(hsm, {
      get(target, prop, receiver) {
        if (prop === 'copyToSession') return async (h: Buffer) => copies[copies.push(await target.copyToSession(h)) - 1];
        if (prop === 'wrapKwp') return async (kek: Buffer, k: Buffer) => (used.push(kek), target.wrapKwp(kek, k));
        if (prop === 'unwrapKwp') return async (kek: Buffer, ...rest: [Buffer, number, KeyPolicy]) => (used.push(kek), target.unwrapKwp(kek, ...rest));
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const keyring = await HubKeyring.load(watching);
    const key = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    const blob = await keyring.wrapUnderMaster(key);
    const kcv = await aesKcv(hsm, key);
    assert.equal(await aesKcv(hsm, await keyring.unwrapFromMaster(blob, 32, { sign: true })), kcv);
    assert.equal(copies.length, 1, 'one copy, made on first use');
    assert.deepEqual(used, [copies[0], copies[0]], 'wrap and unwrap went through the session copy');
    assert.equal((await hsm.keyInfo(copies[0])).token, false);
    // A token that refuses C_CopyObject (CKA_COPYABLE false): the keyring quietly keeps the token object.
    let copyAttempts = 0;
    const refusing = new Proxy(hsm, {
      get(target, prop, receiver) {
        if (prop === 'copyToSession') {
          return async () => {
            copyAttempts++;
            throw new KeyhubError('HSM_ERROR', 'C_CopyObject: CKR_ACTION_PROHIBITED');
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const strict = await HubKeyring.load(refusing);
    assert.deepEqual(await strict.wrapUnderMaster(key), blob);
    assert.equal(await aesKcv(hsm, await strict.unwrapFromMaster(blob, 32, { sign: true })), kcv);
    assert.equal(copyAttempts, 1, 'asked once, then the token object is used');
  });

  it('answers a ping on an open token', async () => {
    await hsm.ping();
  });

  it('runs concurrent operations on separate pooled sessions', async () => {
    const kek = await hsm.generateAesKey(32, { token: false, wrap: true, unwrap: true });
    const key = await hsm.generateAesKey(32, { token: false, extractable: true });
    const blobs = await Promise.all(Array.from({ length: 64 }, () => hsm.wrapKwp(kek, key)));
    assert.equal(new Set(blobs.map((b) => b.toString('hex'))).size, 1, 'KWP is deterministic: every concurrent wrap gives the same blob');
  });
  // Last: login state is per application and token in PKCS#11, so the PIN is only checked when no other session is open.
  it('reports a wrong PIN, a missing PIN and a missing token with stable codes', async () => {
    await hsm.close();
    await assert.rejects(hsm.ping(), (e: unknown) => KeyhubError.is(e, 'HSM_ERROR'));
    process.env.KEYHUB_TEST_WRONG_PIN = '0000000000000000';
    await assert.rejects(Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_WRONG_PIN' }), (e: unknown) => KeyhubError.is(e, 'HSM_PIN_INCORRECT') && e.ckr === 'CKR_PIN_INCORRECT');
    await assert.rejects(Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_UNSET_PIN' }), (e: unknown) => KeyhubError.is(e, 'HSM_PIN_MISSING'));
    await assert.rejects(Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'nope', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN' }), (e: unknown) => KeyhubError.is(e, 'HSM_TOKEN_NOT_FOUND'));
    await assert.rejects(Pkcs11Hsm.open({ module: '/nonexistent/libpkcs11.so', tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN' }), (e: unknown) => KeyhubError.is(e, 'HSM_MODULE_LOAD_FAILED'));
  });

});
