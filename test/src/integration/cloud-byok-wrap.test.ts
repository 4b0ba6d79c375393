import { strict as assert } from 'node:assert';
import { constants, createHmac, privateDecrypt, randomBytes } from 'node:crypto';
import { aesKcv, KeyhubError, kcvHex, Pkcs11Hsm, type KeyHandle } from '@keyhub/shared';
import { SOFTHSM2_WRAP_OPTIONS, wrapInHsm } from '@keyhub/listener/dist/targets/cloud/byok/hsm-wrap';
import { kwpWrap } from '@keyhub/listener/dist/targets/cloud/byok/kwp';
import { ScratchBuffers } from '@keyhub/listener/dist/targets/cloud/byok/scratch';
import { wrapInMemory } from '@keyhub/listener/dist/targets/cloud/byok/software-wrap';
import { createSoftHsm, run, type SoftHsmEnv } from '../env';
import { rsaWrappingKey } from '../fixtures/cloud/http-standin';
import { PythonUnwrapper } from '../fixtures/cloud/independent-unwrap';

/** For each [ephemeral hex, KWP blob hex]: Python unwraps the blob, wraps the result again and prints [material hex, re-wrapped blob hex]. */
const PY_REWRAP =
  'import sys,json;from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding as w,aes_key_unwrap_with_padding as u\n' +
  'out=[]\nfor e,b in json.load(sys.stdin):\n  m=u(bytes.fromhex(e),bytes.fromhex(b));out.append([m.hex(),w(bytes.fromhex(e),m).hex()])\nprint(json.dumps(out))';

describe('cloud BYOK wrap constructions (CKM_RSA_AES_KEY_WRAP, RSA-OAEP)', function () {
  this.timeout(60_000);
  const python = new PythonUnwrapper();
  const wrapping = rsaWrappingKey(2048);
  let env: SoftHsmEnv;
  let hsm: Pkcs11Hsm;

  before(async () => {
    env = await createSoftHsm(['cloud-wrap']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_TEST_CLOUD_WRAP_PIN = env.tokens[0].pin;
    hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'cloud-wrap', pinEnv: 'KEYHUB_TEST_CLOUD_WRAP_PIN' });
  });

  after(async () => {
    python.close();
    await hsm?.close();
    await env?.cleanup();
  });

  it('software AES-KWP matches the RFC 5649 vectors byte for byte', () => {
    const kek = Buffer.from('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8', 'hex');
    assert.equal(kwpWrap(kek, Buffer.from('c37b7e6492584340bed12207808941155068f738', 'hex')).toString('hex'), '138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a');
    assert.equal(kwpWrap(kek, Buffer.from('466f7250617369', 'hex')).toString('hex'), 'afbeb0f07dfbf5419200f2ccb50bb24f');
  });

  for (const hash of ['sha1', 'sha256'] as const) {
    it(`in-memory RSA-AES (${hash}) unwraps in Python to the material, and every scratch buffer is zero afterwards`, async () => {
      const material = randomBytes(32);
      const copy = Buffer.from(material);
      const scratch = new ScratchBuffers();
      scratch.hold(material);
      const blob = wrapInMemory(wrapping.spki, material, { construction: 'rsa-aes-kwp', hash }, scratch);
      assert.equal(blob.length, 256 + 40, 'RSA-2048 head, then KWP of 32 bytes (40 bytes)');
      assert.equal(scratch.buffers.length, 2, 'the material and the ephemeral AES key were held');
      assert.equal(scratch.buffers[1].length, 32);
      for (const b of scratch.buffers)
        assert.ok(
          b.every((x) => x === 0),
          'wiped',
        );
      const got = await python.unwrap({ privateKeyPkcs8: wrapping.pkcs8, blob, construction: 'rsa-aes-kwp', hash });
      assert.ok(got?.equals(copy));
    });
  }

  it('wipes the material it holds also when the wrap fails (too long for direct OAEP)', () => {
    const scratch = new ScratchBuffers();
    const material = scratch.hold(randomBytes(300));
    assert.throws(
      () => wrapInMemory(wrapping.spki, material, { construction: 'rsa-oaep', hash: 'sha256' }, scratch),
      (e: unknown) => KeyhubError.is(e, 'CLOUD_WRAP_UNSUPPORTED'),
    );
    assert.ok(material.every((x) => x === 0));
  });

  it('HSM path: SoftHSM2 KWP output equals Python aes_key_wrap_with_padding byte for byte (16..64 bytes), KCVs match, no object left', async () => {
    const before = (await hsm.findKeys({ token: false })).length;
    const cases: Array<{ handle: KeyHandle; length: number; kcv: string; kind: 'aes' | 'hmac' }> = [];
    for (const length of [16, 24, 32]) {
      const handle = await hsm.generateAesKey(length, { token: false, sensitive: true, extractable: true, sign: true });
      cases.push({ handle, length, kcv: await aesKcv(hsm, handle), kind: 'aes' });
    }
    for (const length of [40, 48, 64]) {
      const handle = await hsm.generateHmacKey(length, { token: false, sensitive: true, extractable: true });
      cases.push({ handle, length, kcv: kcvHex(await hsm.hmacSha256(handle, Buffer.alloc(16))), kind: 'hmac' });
    }
    const pairs: string[][] = [];
    for (const c of cases) {
      const blob = await wrapInHsm(hsm, wrapping.spki, c.handle, c.length, { construction: 'rsa-aes-kwp', hash: 'sha1' }, SOFTHSM2_WRAP_OPTIONS);
      const eph = privateDecrypt({ key: wrapping.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, blob.subarray(0, 256));
      pairs.push([eph.toString('hex'), blob.subarray(256).toString('hex')]);
    }
    const r = await run('python3', ['-c', PY_REWRAP], { input: JSON.stringify(pairs) });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as string[][];
    out.forEach(([materialHex, rewrapped], i) => {
      assert.equal(rewrapped, pairs[i][1], `KWP of ${cases[i].length} bytes is byte-identical to Python's`);
      const material = Buffer.from(materialHex, 'hex');
      assert.equal(material.length, cases[i].length);
    });
    // KCVs by an implementation outside the token: Python CMAC for AES, node HMAC for the generic secrets.
    for (const [i, c] of cases.entries()) {
      const material = Buffer.from(out[i][0], 'hex');
      const kcv = c.kind === 'aes' ? await python.aesKcv(material) : kcvHex(createHmac('sha256', material).update(Buffer.alloc(16)).digest());
      assert.equal(kcv, c.kcv);
    }
    for (const c of cases) await hsm.destroy(c.handle);
    assert.equal((await hsm.findKeys({ token: false })).length, before, 'the imported public key and the ephemeral key were destroyed');
  });

  it('HSM path refuses lengths SoftHSM2 would zero-pad and hashes it lacks', async () => {
    const h = await hsm.generateHmacKey(20, { token: false, sensitive: true, extractable: true });
    try {
      for (const [len, hash] of [
        [20, 'sha1'],
        [32, 'sha256'],
      ] as const) {
        await assert.rejects(wrapInHsm(hsm, wrapping.spki, h, len, { construction: 'rsa-aes-kwp', hash }, SOFTHSM2_WRAP_OPTIONS), (e: unknown) => KeyhubError.is(e, 'CLOUD_WRAP_UNSUPPORTED'));
      }
    } finally {
      await hsm.destroy(h);
    }
  });
});
