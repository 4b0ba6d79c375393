import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { aesKcv, hsmError, KeyhubError, Pkcs11Hsm } from '@keyhub/shared';
import { KwpTranslator } from '@keyhub/shared/dist/hsm/pkcs11/kwp-translator';
import { HMK_LABEL, HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import { createSoftHsm, pkcs11Tool, run, type SoftHsmEnv } from '../env';

/** Python's `cryptography`: an implementation of RFC 5649 and CMAC independent of OpenSSL's CLI and of SoftHSM. */
async function python(code: string, ...args: string[]): Promise<string> {
  const r = await run('python3', ['-c', code, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}
const PY_WRAP = 'import sys;from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding as w;print(w(bytes.fromhex(sys.argv[1]),bytes.fromhex(sys.argv[2])).hex())';
/** Many RFC 5649 wraps in one run: argv[1] is a JSON list of [kek hex, key hex]; prints one blob hex per line. */
const PY_WRAP_MANY =
  'import sys,json;from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding as w;print(chr(10).join(w(bytes.fromhex(k),bytes.fromhex(v)).hex() for k,v in json.loads(sys.argv[1])))';
const PY_CMAC =
  'import sys;from cryptography.hazmat.primitives.cmac import CMAC;from cryptography.hazmat.primitives.ciphers import algorithms;c=CMAC(algorithms.AES(bytes.fromhex(sys.argv[1])));c.update(bytes(16));print(c.finalize()[:3].hex())';

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
    const r = await pkcs11Tool(env, [
      '--token-label',
      t.label,
      '--login',
      '--pin',
      t.pin,
      '--write-object',
      file,
      '--type',
      'secrkey',
      '--key-type',
      `AES:${value.length}`,
      '--label',
      label,
      '--id',
      id,
      ...flags,
    ]);
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

  it('the hub keyring re-wraps through its two master keys as token objects (not copyable, not modifiable), only blobs whose row MAC verifies', async () => {
    await HubKeyring.ensure(hsm);
    const keyring = await HubKeyring.load(hsm);
    const [hmk] = await hsm.findKeys({ class: 'secret', label: HMK_LABEL, token: true });
    // The token refuses a session copy of the master key (CKA_COPYABLE false), so the keyring uses the token object.
    await assert.rejects(hsm.copyToSession(hmk), (e: unknown) => KeyhubError.is(e, 'HSM_ERROR') && e.ckr === 'CKR_ACTION_PROHIBITED');
    const key = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    const kek = await hsm.generateAesKey(32, { token: false, extractable: true, wrap: true, unwrap: true });
    const blob = await keyring.wrapKeyVersion(key);
    const kekBlob = await keyring.wrapRootKek(kek);
    const keyMac = { data: Buffer.from('key row'), tag: await keyring.macRow(Buffer.from('key row')) };
    const kekMac = { data: Buffer.from('kek row'), tag: await keyring.macRow(Buffer.from('kek row')) };
    assert.ok(await keyring.verifyRow(keyMac.data, keyMac.tag));
    assert.ok(!(await keyring.verifyRow(Buffer.from('other row'), keyMac.tag)));
    // The key re-wrapped under the KEK, both unwrapped from their master keys: the same blob as wrapping directly.
    const [out] = await keyring.translate([{ blob: kekBlob, lengthBytes: 32, mac: kekMac }], [{ blob, lengthBytes: 32, mac: keyMac }], new Uint32Array([0, 0]));
    assert.deepEqual(out, await hsm.wrapKwp(kek, key));
    // Each blob only under its own master key, and only with its MAC.
    const swapped = keyring.translate([{ blob, lengthBytes: 32, mac: keyMac }], [{ blob, lengthBytes: 32, mac: keyMac }], new Uint32Array([0, 0]));
    await assert.rejects(swapped, (e: unknown) => KeyhubError.is(e, 'HSM_ERROR'));
    const noMac = keyring.translate([{ blob: kekBlob, lengthBytes: 32, mac: kekMac }], [{ blob, lengthBytes: 32 }], new Uint32Array([0, 0]));
    await assert.rejects(noMac, (e: unknown) => KeyhubError.is(e, 'ROW_MAC_INVALID'));
    // The tag of another row over this row's data (what a blob moved between rows amounts to).
    const wrongMac = keyring.translate([{ blob: kekBlob, lengthBytes: 32, mac: { data: kekMac.data, tag: keyMac.tag } }], [{ blob, lengthBytes: 32, mac: keyMac }], new Uint32Array([0, 0]));
    await assert.rejects(wrongMac, (e: unknown) => KeyhubError.is(e, 'ROW_MAC_INVALID') && e.details?.side === 'kek' && e.details?.index === 0);
    // The same checks on the pool path (modules kept off the worker thread).
    const pooled = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN', translateWorker: false });
    try {
      const onPool = await HubKeyring.load(pooled);
      const [again] = await onPool.translate([{ blob: kekBlob, lengthBytes: 32, mac: kekMac }], [{ blob, lengthBytes: 32, mac: keyMac }], new Uint32Array([0, 0]));
      assert.deepEqual(again, out);
      const badKey = onPool.translate([{ blob: kekBlob, lengthBytes: 32, mac: kekMac }], [{ blob, lengthBytes: 32, mac: { data: keyMac.data, tag: kekMac.tag } }], new Uint32Array([0, 0]));
      await assert.rejects(badKey, (e: unknown) => KeyhubError.is(e, 'ROW_MAC_INVALID') && e.details?.side === 'key' && e.details?.index === 0);
    } finally {
      await pooled.close();
    }
  });

  // translateKwp: many keys re-wrapped under many KEKs in one call. (Plain tests, not a nested
  // suite: mocha would run one after the PIN test below, which closes the token.)
  {
    const master = randomBytes(32);
    const kekValues = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const keyValues = [randomBytes(16), randomBytes(24), randomBytes(32)];
    let masterHandle: Buffer;
    let keks: Array<{ blob: Buffer; lengthBytes: number }>;
    let keys: Array<{ blob: Buffer; lengthBytes: number }>;
    // Every KEK with every key, in an order that is neither KEK-major nor key-major.
    const pairs = new Uint32Array([2, 0, 0, 1, 1, 2, 0, 0, 2, 2, 1, 0, 0, 2, 2, 1, 1, 1]);
    let expected: string[];
    // Fewer KEKs than keys: the worker then holds the KEKs and streams the keys (the other way round above).
    const fewKekPairs = new Uint32Array([1, 2, 0, 0, 1, 1, 0, 2, 1, 0, 0, 1]);
    let fewKekExpected: string[];

    const wrapMany = async (items: Array<[Buffer, Buffer]>): Promise<Buffer[]> =>
      (await python(PY_WRAP_MANY, JSON.stringify(items.map(([k, v]) => [k.toString('hex'), v.toString('hex')])))).split('\n').map((h) => Buffer.from(h, 'hex'));
    const sessionObjects = async (h: Pkcs11Hsm): Promise<number> => (await h.findKeys({ token: false })).length;

    let planted: Promise<void> | undefined;
    const setUp = (): Promise<void> =>
      (planted ??= (async () => {
        await plant('translate-master', '10', master, ['--usage-wrap']);
        [masterHandle] = await hsm.findKeys({ label: 'translate-master', class: 'secret' });
        const blobs = await wrapMany([...kekValues, ...keyValues].map((v) => [master, v]));
        keks = kekValues.map((v, i) => ({ blob: blobs[i], lengthBytes: v.length }));
        keys = keyValues.map((v, i) => ({ blob: blobs[3 + i], lengthBytes: v.length }));
        const want: Array<[Buffer, Buffer]> = [];
        for (let i = 0; i < pairs.length; i += 2) want.push([kekValues[pairs[i]], keyValues[pairs[i + 1]]]);
        expected = (await wrapMany(want)).map((b) => b.toString('hex'));
        const wantFew: Array<[Buffer, Buffer]> = [];
        for (let i = 0; i < fewKekPairs.length; i += 2) wantFew.push([kekValues[fewKekPairs[i]], keyValues[fewKekPairs[i + 1]]]);
        fewKekExpected = (await wrapMany(wantFew)).map((b) => b.toString('hex'));
      })());

    it('translateKwp gives, on the worker thread and on the pool alike, the blobs Python cryptography makes, and leaves no object behind', async () => {
      await setUp();
      const pooled = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN', translateWorker: false });
      try {
        for (const [name, h] of [
          ['worker thread', hsm],
          ['async calls on the pool', pooled],
        ] as const) {
          const before = await sessionObjects(h);
          const out = await h.translateKwp({ unwrappingKey: masterHandle, keks, keys, pairs });
          assert.deepEqual(
            out.map((b) => b.toString('hex')),
            expected,
            name,
          );
          const few = await h.translateKwp({ unwrappingKey: masterHandle, keks: keks.slice(0, 2), keys, pairs: fewKekPairs });
          assert.deepEqual(
            few.map((b) => b.toString('hex')),
            fewKekExpected,
            `${name}: fewer KEKs than keys`,
          );
          assert.equal(await sessionObjects(h), before, `${name}: every unwrapped KEK and key is destroyed`);
        }
      } finally {
        await pooled.close();
      }
    });

    it('translateKwp fails a tampered blob with the CKR code and destroys what it had unwrapped, on both paths; refuses bad lengths and pairs before the token', async () => {
      await setUp();
      const pooled = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN', translateWorker: false });
      const tamper = (list: typeof keys, i: number): typeof keys => {
        const copy = list.map((k) => ({ ...k, blob: Buffer.from(k.blob) }));
        copy[i].blob[12] ^= 0x01;
        return copy;
      };
      try {
        for (const [name, h] of [
          ['worker thread', hsm],
          ['async calls on the pool', pooled],
        ] as const) {
          // 3 KEKs and 3 keys: the keys are held for the call, the KEKs streamed. One bad blob on each side.
          for (const [side, input] of [
            ['a held key', { keks, keys: tamper(keys, 2) }],
            ['a streamed KEK', { keks: tamper(keks, 1), keys }],
          ] as const) {
            const before = await sessionObjects(h);
            await assert.rejects(
              h.translateKwp({ unwrappingKey: masterHandle, ...input, pairs }),
              (e: unknown) => KeyhubError.is(e, 'HSM_ERROR') && typeof e.ckr === 'string' && e.ckr.startsWith('CKR_') && e.message.includes('C_UnwrapKey'),
              `${name}, ${side}`,
            );
            assert.equal(await sessionObjects(h), before, `${name}, ${side}: whatever was unwrapped before the bad blob is gone`);
          }
        }
      } finally {
        await pooled.close();
      }
      await assert.rejects(hsm.translateKwp({ unwrappingKey: masterHandle, keks, keys: [{ ...keys[0], lengthBytes: 24 }], pairs: new Uint32Array([0, 0]) }), (e: unknown) =>
        KeyhubError.is(e, 'KEY_LENGTH_INVALID'),
      );
      await assert.rejects(hsm.translateKwp({ unwrappingKey: masterHandle, keks, keys, pairs: new Uint32Array([0, 3]) }), (e: unknown) => KeyhubError.is(e, 'INPUT_INVALID'));
      await assert.rejects(hsm.translateKwp({ unwrappingKey: masterHandle, keks, keys, pairs: new Uint32Array([0]) }), (e: unknown) => KeyhubError.is(e, 'INPUT_INVALID'));
      // Nothing wrong with the worker after failures: the next call succeeds.
      assert.deepEqual(
        (await hsm.translateKwp({ unwrappingKey: masterHandle, keks, keys, pairs })).map((b) => b.toString('hex')),
        expected,
      );
    });

    it('translateKwp fails the calls in flight when its worker thread dies, closes its session (its objects go) and starts a new one', async () => {
      await setUp();
      const before = await sessionObjects(hsm);
      // Long enough to be mid-call when the thread is stopped: 5,000 pairs, each with a KEK of its own.
      const many = Array.from({ length: 5000 }, () => keks[0]);
      const call = hsm.translateKwp({ unwrappingKey: masterHandle, keks: many, keys, pairs: new Uint32Array(many.flatMap((_, i) => [i, 0])) });
      const internals = hsm as unknown as { translator: { running?: { thread: { terminate(): Promise<number> }; ready: Promise<void> } } };
      const running = internals.translator.running;
      assert.ok(running, 'the worker runs');
      await running.ready;
      await new Promise((r) => setTimeout(r, 20));
      await running.thread.terminate();
      await assert.rejects(call, (e: unknown) => KeyhubError.is(e, 'HSM_ERROR') && /worker thread stopped/.test(e.message));
      assert.equal(await sessionObjects(hsm), before, "the dead worker's session was closed with the KEKs it had unwrapped");
      assert.deepEqual(
        (await hsm.translateKwp({ unwrappingKey: masterHandle, keks, keys, pairs })).map((b) => b.toString('hex')),
        expected,
      );
    });
    it('translateKwp reports a worker thread that cannot open its session with the CKR code, and closes cleanly after', async () => {
      await setUp();
      const slot = Buffer.alloc(8);
      slot.writeBigUInt64LE(987_654n);
      const translator = new KwpTranslator({ init: { module: env.modulePath, slot, kwpMechanism: 0x210a }, toError: hsmError, closeSession: () => undefined });
      try {
        await assert.rejects(
          translator.translate({ unwrappingKey: masterHandle, keks, keys, pairs }),
          (e: unknown) => KeyhubError.is(e, 'HSM_ERROR') && e.ckr === 'CKR_SLOT_ID_INVALID' && e.message.includes('C_OpenSession'),
        );
      } finally {
        await translator.close();
      }
    });
  }

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
    await assert.rejects(
      Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_WRONG_PIN' }),
      (e: unknown) => KeyhubError.is(e, 'HSM_PIN_INCORRECT') && e.ckr === 'CKR_PIN_INCORRECT',
    );
    await assert.rejects(Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_UNSET_PIN' }), (e: unknown) => KeyhubError.is(e, 'HSM_PIN_MISSING'));
    await assert.rejects(Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'nope', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN' }), (e: unknown) => KeyhubError.is(e, 'HSM_TOKEN_NOT_FOUND'));
    await assert.rejects(Pkcs11Hsm.open({ module: '/nonexistent/libpkcs11.so', tokenLabel: 'adapter', pinEnv: 'KEYHUB_TEST_ADAPTER_PIN' }), (e: unknown) =>
      KeyhubError.is(e, 'HSM_MODULE_LOAD_FAILED'),
    );
  });
});
