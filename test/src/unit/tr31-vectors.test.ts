import { strict as assert } from 'node:assert';
import { createCipheriv } from 'node:crypto';
import { parseTr31Header, tr31Cmac, Tr31Secrets, unwrapTr31, wrapTr31, type Tr31Header } from '@keyhub/protocol';
import { TR31_VECTORS } from '../fixtures/tr31/vectors';

const hex = (s: string) => Buffer.from(s, 'hex');

/** KCVs as the annex and openemv state them, computed here with node:crypto apart from the code under test where possible. */
function kcv(algorithm: string, key: Buffer): string {
  if (algorithm === 'A') return tr31Cmac('aes', key, Buffer.alloc(16), new Tr31Secrets()).subarray(0, 3).toString('hex').toUpperCase();
  const c = createCipheriv(key.length === 16 ? 'des-ede-ecb' : 'des-ede3-ecb', key, null);
  return c.update(Buffer.alloc(8)).subarray(0, 3).toString('hex').toUpperCase();
}

describe('TR-31 key blocks: published vectors (TR-31:2018 annex A.7, X9.143 8.1, payShield)', () => {
  for (const v of TR31_VECTORS) {
    it(`unwraps ${v.name} to the published key and KCV`, () => {
      const { key, header, headerText } = unwrapTr31(hex(v.kbpk), v.block);
      assert.equal(key.toString('hex').toUpperCase(), v.key);
      assert.equal(headerText, parseTr31Header(v.block).text);
      if (v.kcv) assert.equal(kcv(header.algorithm, key), v.kcv);
    });
    if (v.padding) {
      it(`wraps ${v.name} byte for byte with the published padding`, () => {
        const { header } = parseTr31Header(v.block);
        const block = wrapTr31(hex(v.kbpk), header, hex(v.key), { padding: hex(v.padding!), maskedKeyLength: v.maskedKeyLength });
        assert.equal(block, v.block);
      });
    }
  }

  it('re-wraps every vector under its own header and KBPK to a block that opens to the same key (random padding)', () => {
    for (const v of TR31_VECTORS) {
      const { header, key } = unwrapTr31(hex(v.kbpk), v.block);
      const again = wrapTr31(hex(v.kbpk), header, key);
      assert.equal(again.length, v.maskedKeyLength ? v.block.length - 32 : v.block.length, v.name);
      assert.notEqual(again, v.block, 'random padding makes a new block');
      const opened = unwrapTr31(hex(v.kbpk), again);
      assert.deepEqual(opened.header, header);
      assert.equal(opened.key.toString('hex').toUpperCase(), v.key);
    }
  });

  it('A.7.4 header fields read as published: D, P0, AES, encrypt only, no version, exportable, no optional blocks', () => {
    const expected: Tr31Header = { version: 'D', keyUsage: 'P0', algorithm: 'A', modeOfUse: 'E', keyVersion: '00', exportability: 'E', keyContext: '0', optionalBlocks: [] };
    assert.deepEqual(parseTr31Header(TR31_VECTORS[0].block).header, expected);
    assert.deepEqual(parseTr31Header(TR31_VECTORS[3].block).header.optionalBlocks, [{ id: 'KS', data: '00604B120F9292800000' }]);
  });
});

describe('TR-31 CMAC: NIST SP 800-38B / RFC 4493 examples', () => {
  const cases: Array<[cipher: 'aes' | 'tdes', key: string, message: string, tag: string]> = [
    ['aes', '2b7e151628aed2a6abf7158809cf4f3c', '', 'bb1d6929e95937287fa37d129b756746'],
    ['aes', '2b7e151628aed2a6abf7158809cf4f3c', '6bc1bee22e409f96e93d7e117393172a', '070a16b46b4d4144f79bdd9dd04a287c'],
    ['aes', '2b7e151628aed2a6abf7158809cf4f3c', '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411', 'dfa66747de9ae63030ca32611497c827'],
    ['tdes', '8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5', '', 'b7a688e122ffaf95'],
    ['tdes', '8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5', '6bc1bee22e409f96', '8e8f293136283797'],
    ['tdes', '8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5', '6bc1bee22e409f96e93d7e117393172aae2d8a57', '743ddbe0ce2dc2ed'],
  ];
  for (const [cipher, key, message, tag] of cases) {
    it(`${cipher} CMAC of ${message.length / 2} bytes`, () => {
      assert.equal(tr31Cmac(cipher, hex(key), hex(message), new Tr31Secrets()).toString('hex'), tag);
    });
  }
});
