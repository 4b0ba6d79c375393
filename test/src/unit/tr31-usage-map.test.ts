import { strict as assert } from 'node:assert';
import { keyhubUsagesFromTr31, parseTr31Header, Tr31Error, tr31HeaderFieldsFor, unwrapTr31, wrapTr31, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';

function refused(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof Tr31Error && e.code === code);
}

const fields = (algorithm: KeyAlgorithm, usages: KeyUsage[], exportable = false, extra: { version?: number; keyUsage?: string } = {}) =>
  tr31HeaderFieldsFor({ algorithm, usages, exportable, ...extra });

describe('TR-31 header fields from a Keyhub key policy', () => {
  const table: Array<[KeyAlgorithm, KeyUsage[], string, string, string]> = [
    ['AES-256', ['encrypt', 'decrypt'], 'D0', 'A', 'B'],
    ['AES-128', ['encrypt'], 'D0', 'A', 'E'],
    ['AES-192', ['decrypt'], 'D0', 'A', 'D'],
    ['AES-256', ['wrap', 'unwrap'], 'K0', 'A', 'B'],
    ['AES-256', ['wrap'], 'K0', 'A', 'E'],
    ['AES-256', ['unwrap'], 'K0', 'A', 'D'],
    ['AES-128', ['sign', 'verify'], 'M6', 'A', 'C'],
    ['AES-128', ['sign'], 'M6', 'A', 'G'],
    ['AES-128', ['verify'], 'M6', 'A', 'V'],
    ['AES-256', ['derive'], 'B3', 'A', 'X'],
    ['TDES-2KEY', ['encrypt', 'decrypt'], 'D0', 'T', 'B'],
    ['TDES-3KEY', ['wrap', 'unwrap'], 'K0', 'T', 'B'],
    ['TDES-2KEY', ['sign', 'verify'], 'M6', 'T', 'C'],
    ['HMAC-SHA256', ['sign', 'verify'], 'M7', 'H', 'C'],
    ['HMAC-SHA512', ['verify'], 'M7', 'H', 'V'],
  ];
  for (const [algorithm, usages, keyUsage, alg, mode] of table) {
    it(`${algorithm} [${usages.join(', ')}] -> ${keyUsage} ${alg} ${mode}, and back`, () => {
      const f = fields(algorithm, usages);
      assert.deepEqual(f, { keyUsage, algorithm: alg, modeOfUse: mode, keyVersion: '00', exportability: 'N', keyContext: '0' });
      assert.deepEqual(keyhubUsagesFromTr31(f).sort(), [...usages].sort());
    });
  }

  it('exportability follows the policy: E when exportable (only in a key block), N otherwise, never S', () => {
    assert.equal(fields('AES-256', ['encrypt'], true).exportability, 'E');
    assert.equal(fields('AES-256', ['encrypt'], false).exportability, 'N');
  });

  it('key version 1..99 goes into the header; others are 00 (the field has two characters)', () => {
    assert.equal(fields('AES-256', ['encrypt'], false, { version: 7 }).keyVersion, '07');
    assert.equal(fields('AES-256', ['encrypt'], false, { version: 99 }).keyVersion, '99');
    assert.equal(fields('AES-256', ['encrypt'], false, { version: 100 }).keyVersion, '00');
  });

  it('takes a requested TR-31 key usage of the same family (P0 for a PIN key, K1 for a KBPK, M3 for a retail MAC)', () => {
    assert.equal(fields('AES-256', ['encrypt', 'decrypt'], false, { keyUsage: 'P0' }).keyUsage, 'P0');
    assert.equal(fields('AES-256', ['wrap', 'unwrap'], false, { keyUsage: 'K1' }).keyUsage, 'K1');
    assert.equal(fields('TDES-2KEY', ['sign', 'verify'], false, { keyUsage: 'M3' }).keyUsage, 'M3');
  });

  it('refuses a requested key usage of another family, or HMAC outside M7', () => {
    refused(() => fields('AES-256', ['encrypt'], false, { keyUsage: 'K0' }), 'TR31_USAGE_UNMAPPABLE');
    refused(() => fields('AES-256', ['wrap'], false, { keyUsage: 'P0' }), 'TR31_USAGE_UNMAPPABLE');
    refused(() => fields('AES-256', ['sign'], false, { keyUsage: 'M7' }), 'TR31_USAGE_UNMAPPABLE');
    refused(() => fields('HMAC-SHA256', ['sign'], false, { keyUsage: 'M6' }), 'TR31_USAGE_UNMAPPABLE');
  });

  it('refuses usages that a single TR-31 usage cannot carry, rather than granting more', () => {
    refused(() => fields('AES-256', ['encrypt', 'sign']), 'TR31_USAGE_UNMAPPABLE');
    refused(() => fields('AES-256', ['wrap', 'decrypt']), 'TR31_USAGE_UNMAPPABLE');
    refused(() => fields('AES-256', []), 'TR31_USAGE_UNMAPPABLE');
    refused(() => fields('HMAC-SHA256', ['derive']), 'TR31_USAGE_UNMAPPABLE');
  });

  it('refuses key types this mapping does not carry', () => {
    refused(() => fields('RSA-2048', ['sign']), 'TR31_UNSUPPORTED');
    refused(() => fields('EC-P256', ['sign']), 'TR31_UNSUPPORTED');
    refused(() => fields('GENERIC-256', ['derive']), 'TR31_UNSUPPORTED');
  });

  it('the reverse refuses modes it cannot express (N, no restriction)', () => {
    refused(() => keyhubUsagesFromTr31({ keyUsage: 'D0', modeOfUse: 'N' }), 'TR31_USAGE_UNMAPPABLE');
    refused(() => keyhubUsagesFromTr31({ keyUsage: 'M6', modeOfUse: 'B' }), 'TR31_USAGE_UNMAPPABLE');
  });

  it('the header binds them: a block made from the mapping opens with the same usage, mode and exportability', () => {
    const kbpk = Buffer.alloc(32, 7);
    const f = fields('AES-128', ['wrap'], true, { version: 3 });
    const block = wrapTr31(kbpk, { version: 'D', ...f }, Buffer.alloc(16, 9));
    assert.equal(block.slice(5, 16), 'K0AE03E0000');
    const { header } = unwrapTr31(kbpk, block);
    assert.deepEqual(keyhubUsagesFromTr31(header), ['wrap']);
    assert.equal(parseTr31Header(block).header.exportability, 'E');
  });
});
