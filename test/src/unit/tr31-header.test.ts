import { strict as assert } from 'node:assert';
import { encodeTr31Header, parseTr31Header, Tr31Error, type Tr31Header } from '@keyhub/protocol';

const base: Tr31Header = { version: 'B', keyUsage: 'P0', algorithm: 'T', modeOfUse: 'E', keyVersion: '00', exportability: 'N', keyContext: '0', optionalBlocks: [] };

/** A header-only "block" whose length field counts just the header, so the header parser can be tried alone. */
const headerOnly = (h: Tr31Header) => encodeTr31Header(h, 0);

function refused(fn: () => unknown, code = 'TR31_MALFORMED'): void {
  assert.throws(fn, (e: unknown) => e instanceof Tr31Error && e.code === code);
}

describe('TR-31 header codec', () => {
  it('encodes the fixed fields in X9.143 order with the total length', () => {
    assert.equal(encodeTr31Header(base, 64), 'B0080P0TE00N0000');
    assert.equal(encodeTr31Header({ ...base, version: 'D', algorithm: 'A', keyVersion: '12', exportability: 'E', keyContext: '2' }, 96), 'D0112P0AE12E0020');
  });

  // Optional-block layouts as psec's header tests state them (tests/test_tr31.py).
  it('reads optional blocks: short length, PB last, several blocks, an empty one', () => {
    assert.deepEqual(parseTr31Header('B0040P0TE00N0100KS1800604B120F9292800000').header.optionalBlocks, [{ id: 'KS', data: '00604B120F9292800000' }]);
    assert.deepEqual(parseTr31Header('B0040P0TE00N0200KS1200604B120F9292PB0600').header.optionalBlocks, [{ id: 'KS', data: '00604B120F9292' }]);
    const multi = parseTr31Header('B0056P0TE00N0400KS1800604B120F9292800000T104T20600PB0600');
    assert.deepEqual(multi.header.optionalBlocks, [
      { id: 'KS', data: '00604B120F9292800000' },
      { id: 'T1', data: '' },
      { id: 'T2', data: '00' },
    ]);
    assert.equal(multi.text.length, 56);
  });

  it('reads the extended length form (00, length of length, length) and writes it for blocks over 255 characters', () => {
    assert.deepEqual(parseTr31Header('B0048P0TE00N0200KS00011600604B120F9292PB0A000000').header.optionalBlocks, [{ id: 'KS', data: '00604B120F9292' }]);
    const long: Tr31Header = { ...base, optionalBlocks: [{ id: 'T0', data: 'P'.repeat(256) }] };
    const text = headerOnly(long);
    assert.equal(text.slice(16, 26), 'T00002010A');
    assert.deepEqual(parseTr31Header(text).header, long);
  });

  it('adds a PB so the header ends on the cipher block (8 for B, 16 for D), and drops it when reading', () => {
    const ks = [{ id: 'KS', data: '00604B120F9292' }];
    const b = headerOnly({ ...base, optionalBlocks: ks });
    assert.equal(b, 'B0040P0TE00N0200KS1200604B120F9292PB0600');
    const d = headerOnly({ ...base, version: 'D', algorithm: 'A', optionalBlocks: ks });
    assert.equal(d.length % 16, 0);
    assert.deepEqual(parseTr31Header(d).header.optionalBlocks, ks);
    // One character short of a boundary: a PB needs four, so it takes a whole extra block.
    const tight = headerOnly({ ...base, optionalBlocks: [{ id: 'T1', data: 'ABC' }] });
    assert.equal(tight.length, 32);
    assert.match(tight, /PB0900000$/);
  });

  const bad: Array<[string, string]> = [
    ['too short', 'B0000P0TE00N'],
    ['length field not digits', 'BX016P0TE00N0000'],
    ['length field differs', 'B0017P0TE00N0000'],
    ['unknown version', 'X0016P0TE00N0000'],
    ['unknown key usage', 'B0016Z9TE00N0000'],
    ['unknown algorithm', 'B0016P0QE00N0000'],
    ['unknown mode of use', 'B0016P0TQ00N0000'],
    ['bad key version', 'B0016P0TE0_N0000'],
    ['unknown exportability', 'B0016P0TE00Q0000'],
    ['block count not digits', 'B0016P0TE00N0X00'],
    ['unknown key context', 'B0016P0TE00N0030'],
    ['reserved not 0', 'B0016P0TE00N0001'],
    ['non-ASCII', 'B0016P0TE00N000\u00e9'],
    ['control character', 'B0016P0TE00N000\n'],
    ['block count says 1, none there', 'B0016P0TE00N0100'],
    ['block length not hex', 'B0024P0TE00N0100KS1Y0000'],
    ['block length below 4', 'B0024P0TE00N0100KS030000'],
    ['block runs past the end', 'B0024P0TE00N0100KSFF0000'],
    ['extended length of length 0', 'B0024P0TE00N0100KS000000'],
    ['extended length too small', 'B0024P0TE00N0100KS000101'],
    ['bad block id', 'B0024P0TE00N0100**080000'],
    ['PB not last', 'B0032P0TE00N0200PB04T10C00000000'],
    ['duplicate block', 'B0024P0TE00N0200T104T104'],
    ['KS not hex', 'B0024P0TE00N0100KS08XYZW'],
    ['header not on the block boundary', 'B0020P0TE00N0100T104'],
  ];
  for (const [why, text] of bad) {
    it(`refuses a header with ${why} as TR31_MALFORMED`, () => refused(() => parseTr31Header(text)));
  }

  it('refuses to encode what it would refuse to read', () => {
    refused(() => headerOnly({ ...base, keyUsage: 'ZZ' }));
    refused(() => headerOnly({ ...base, optionalBlocks: [{ id: 'PB', data: '00' }] }));
    refused(() => headerOnly({ ...base, optionalBlocks: [{ id: 'T1', data: 'x\u0001' }] }));
    refused(() =>
      headerOnly({
        ...base,
        optionalBlocks: [
          { id: 'T1', data: '' },
          { id: 'T1', data: '' },
        ],
      }),
    );
    refused(() => headerOnly({ ...base, optionalBlocks: Array.from({ length: 100 }, (_, i) => ({ id: String(i % 100).padStart(2, '0') + '', data: '' })) }));
    refused(() => encodeTr31Header(base, 9990));
  });
});
