/**
 * The parts of the KCV methods that need no HSM (shared/src/kcv.ts), against
 * published values; the in-token halves are checked against Node's crypto in
 * test/src/integration/key-types-hsm.test.ts.
 */
import { strict as assert } from 'node:assert';
import { createCipheriv, createHash, generateKeyPairSync } from 'node:crypto';
import { KEY_ALGORITHM_INFO, KEY_ALGORITHMS, KEY_LENGTH_BYTES } from '@keyhub/protocol';
import { cmacSubkey, kcvHex, spkiKcv } from '@keyhub/shared';

describe('KCV methods', () => {
  it('cmacSubkey is dbl() of NIST SP 800-38B (RFC 4493 subkey K1 from L)', () => {
    assert.equal(cmacSubkey(Buffer.from('7df76b0c1ab899b33e42f047b91b546f', 'hex')).toString('hex'), 'fbeed618357133667c85e08f7236a8de');
    assert.equal(cmacSubkey(Buffer.from('fbeed618357133667c85e08f7236a8de', 'hex')).toString('hex'), 'f7ddac306ae266ccf90bc11ee46d513b');
  });

  it('a KCV is the first 3 bytes, in lower-case hex', () => {
    assert.equal(kcvHex(Buffer.from('08D7B4FB629D0885', 'hex')), '08d7b4');
  });

  it('the TDES method (ECB of a zero block) gives the published KCV 08D7B4 of the classic test key', () => {
    // What the HSM computes (CKM_DES3_ECB), here with OpenSSL, to pin the method itself.
    const c = createCipheriv('des-ede-ecb', Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex'), null).setAutoPadding(false);
    assert.equal(kcvHex(Buffer.concat([c.update(Buffer.alloc(8)), c.final()])), '08d7b4');
  });

  it('the key pair method is SHA-256 of the DER SubjectPublicKeyInfo', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    assert.equal(spkiKcv(spki), createHash('sha256').update(spki).digest('hex').slice(0, 6));
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'der', type: 'spki' });
    assert.notEqual(spkiKcv(other), spkiKcv(spki));
  });

  it('every algorithm names a KCV method fitting its class, and its length', () => {
    for (const alg of KEY_ALGORITHMS) {
      const info = KEY_ALGORITHM_INFO[alg];
      assert.equal(info.lengthBytes, KEY_LENGTH_BYTES[alg], alg);
      assert.equal(info.keyClass === 'private', info.kcv === 'spki-sha256', alg);
      assert.ok(
        info.defaultUsages.every((u) => info.usages.includes(u)),
        `${alg}: default usages are allowed usages`,
      );
      if (info.keyType === 'aes') assert.equal(info.kcv, 'aes-cmac');
      if (info.keyType === 'des2' || info.keyType === 'des3') assert.equal(info.kcv, 'tdes-ecb');
      if (info.keyType === 'generic') assert.equal(info.kcv, 'hmac-sha256');
    }
  });
});
