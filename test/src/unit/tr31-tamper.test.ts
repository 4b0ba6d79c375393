import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ERROR_CODES, parseTr31Header, Tr31Error, unwrapTr31, wrapTr31, type Tr31Header, type Tr31OptionalBlock } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { TR31_VECTORS } from '../fixtures/tr31/vectors';

const A74 = TR31_VECTORS[0];
const kbpk = Buffer.from(A74.kbpk, 'hex');

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Tr31Error, `threw ${String(e)}`);
    return e.code;
  }
  return 'ACCEPTED';
}

/** Flips one bit of the hex digit at `index` (a nibble of the ciphertext or MAC). */
function flipHex(block: string, index: number, bit: number): string {
  const d = (parseInt(block[index], 16) ^ (1 << bit)).toString(16).toUpperCase();
  return block.slice(0, index) + d + block.slice(index + 1);
}

describe('TR-31 key blocks: tampering and malformed input', () => {
  it('every bit of the encrypted key data and of the MAC is covered: each flip is TR31_MAC_INVALID', () => {
    for (let i = 16; i < A74.block.length; i++) {
      for (let bit = 0; bit < 4; bit++)
        assert.equal(
          code(() => unwrapTr31(kbpk, flipHex(A74.block, i, bit))),
          'TR31_MAC_INVALID',
          `hex digit ${i} bit ${bit}`,
        );
    }
  });

  it('a header changed to other valid values (usage, mode, version, exportability, context) is TR31_MAC_INVALID', () => {
    const headers = ['D0112K0AE00E0000', 'D0112P0AB00E0000', 'D0112P0AE01E0000', 'D0112P0AE00N0000', 'D0112P0AE00S0000', 'D0112P0AE00E0010', 'D0112D0AE00E0000', 'D0112P0TE00E0000'];
    for (const h of headers)
      assert.equal(
        code(() => unwrapTr31(kbpk, h + A74.block.slice(16))),
        'TR31_MAC_INVALID',
        h,
      );
  });

  it('an optional block added, removed or changed is TR31_MAC_INVALID', () => {
    const key = Buffer.alloc(32, 0x11);
    const block = wrapTr31(kbpk, { version: 'D', keyUsage: 'D0', algorithm: 'A', modeOfUse: 'B', exportability: 'N', optionalBlocks: [{ id: 'KV', data: '0001' }] }, key);
    const body = block.slice(parseTr31Header(block).text.length);
    const changed = 'D0144D0AB00N0200KV080002PB080000';
    assert.equal(changed.length, 32);
    assert.equal(
      code(() => unwrapTr31(kbpk, changed.replace('0144', String(32 + body.length).padStart(4, '0')) + body)),
      'TR31_MAC_INVALID',
    );
    const none = 'D0000D0AB00N0000';
    assert.equal(
      code(() => unwrapTr31(kbpk, none.replace('0000', String(16 + body.length).padStart(4, '0')) + body)),
      'TR31_MAC_INVALID',
    );
  });

  it('the codes are rows of the protocol table, and KeyhubError.from keeps them', () => {
    try {
      unwrapTr31(kbpk, A74.block.slice(0, -1) + '0');
      assert.fail('accepted');
    } catch (e) {
      const k = KeyhubError.from(e);
      assert.equal(k.code, 'TR31_MAC_INVALID');
      assert.equal(k.exitCode, ERROR_CODES.TR31_MAC_INVALID.exitCode);
      assert.equal(k.retryable, false);
    }
  });

  it('another KBPK is TR31_MAC_INVALID; a KBPK of the wrong length is TR31_KBPK_INVALID', () => {
    const other = Buffer.from(kbpk);
    other[0] ^= 1;
    assert.equal(
      code(() => unwrapTr31(other, A74.block)),
      'TR31_MAC_INVALID',
    );
    assert.equal(
      code(() => unwrapTr31(kbpk.subarray(0, 20), A74.block)),
      'TR31_KBPK_INVALID',
    );
    assert.equal(
      code(() => unwrapTr31(kbpk, TR31_VECTORS[2].block)),
      'TR31_KBPK_INVALID',
      'B wants a TDES KBPK',
    );
  });

  it('bad lengths and characters are TR31_MALFORMED, before any MAC is computed', () => {
    const b = A74.block;
    const cases = [
      b.slice(0, -1), // length field says 112, block is 111
      b + '0', // and 113
      b.slice(0, -2).replace('0112', '0110'), // MAC no longer whole
      b.slice(0, 16 + 56).replace('0112', '0104') + b.slice(-32), // key data not whole cipher blocks
      b.slice(0, 20) + 'G' + b.slice(21), // not hex
      b.slice(0, 20) + ' ' + b.slice(21),
      b.replace('D0112', 'D112 '), // length not digits
      b.slice(0, 16).replace('0112', '0048') + b.slice(-32), // a MAC and no key data
      '',
    ];
    for (const c of cases)
      assert.equal(
        code(() => unwrapTr31(kbpk, c)),
        'TR31_MALFORMED',
        JSON.stringify(c.slice(0, 24)),
      );
  });

  it('versions A and C are TR31_UNSUPPORTED (TDES variant binding, deprecated)', () => {
    assert.equal(
      code(() => unwrapTr31(Buffer.from('89E88CF7931444F334BD7547FC3F380C', 'hex'), 'A0072P0TE00E0000F5161ED902807AF26F1D62263644BD24192FDB3193C730301CEE8701')),
      'TR31_UNSUPPORTED',
    );
    assert.equal(
      code(() => wrapTr31(kbpk, { version: 'C', keyUsage: 'P0', algorithm: 'T', modeOfUse: 'E', exportability: 'E' }, Buffer.alloc(16))),
      'TR31_UNSUPPORTED',
    );
  });

  it('wrap refuses a key that does not fit its algorithm, or a KBPK weaker than the key', () => {
    const h = { version: 'D' as const, keyUsage: 'D0', algorithm: 'A' as const, modeOfUse: 'B' as const, exportability: 'N' as const };
    assert.equal(
      code(() => wrapTr31(kbpk, h, Buffer.alloc(15))),
      'KEY_LENGTH_INVALID',
    );
    assert.equal(
      code(() => wrapTr31(kbpk.subarray(0, 16), h, Buffer.alloc(32))),
      'TR31_KBPK_INVALID',
    );
    assert.equal(
      code(() => wrapTr31(kbpk.subarray(0, 24), { ...h, version: 'B' }, Buffer.alloc(16))),
      'TR31_KBPK_INVALID',
      'an AES key under a TDES KBPK',
    );
    assert.equal(
      code(() => wrapTr31(kbpk, h, Buffer.alloc(16), { padding: Buffer.alloc(3) })),
      'INPUT_INVALID',
    );
  });
});

const HEADER_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 *_';

const optionalBlock: fc.Arbitrary<Tr31OptionalBlock> = fc
  .record({
    id: fc.constantFrom('KV', 'T1', 'T2', 'DA', 'HM', '10', 'TS'),
    data: fc.string({ unit: fc.constantFrom(...'ABCDEF0123456789 -:.'.split('')), maxLength: 300 }),
  })
  .map((b) => ({ id: b.id, data: b.data }));

const headerArb: fc.Arbitrary<Tr31Header> = fc
  .record({
    version: fc.constantFrom('B' as const, 'D' as const),
    keyUsage: fc.constantFrom('D0', 'K0', 'K1', 'M6', 'P0', 'B3', '42'),
    algorithm: fc.constant('T' as const),
    modeOfUse: fc.constantFrom('B' as const, 'C' as const, 'D' as const, 'E' as const, 'X' as const, 'N' as const),
    keyVersion: fc.constantFrom('00', '01', '99', 'c1'),
    exportability: fc.constantFrom('E' as const, 'N' as const, 'S' as const),
    keyContext: fc.constantFrom('0' as const, '1' as const, '2' as const),
    optionalBlocks: fc.uniqueArray(optionalBlock, { selector: (b) => b.id, maxLength: 4 }),
  })
  .map((h) => ({ ...h }));

/** A TDES key for B (under a TDES KBPK), or an AES key for D; both versions also carry the other algorithm here and there. */
const caseArb = fc.record({ header: headerArb, aes: fc.boolean(), len: fc.constantFrom(16, 24, 32), masked: fc.option(fc.constantFrom(24, 32, 48), { nil: undefined }) });

function material(c: { header: Tr31Header; aes: boolean; len: number }) {
  const version = c.header.version;
  const algorithm: 'A' | 'T' = version === 'D' && c.aes ? 'A' : 'T';
  const keyLen = algorithm === 'A' ? c.len : c.len === 32 ? 24 : c.len;
  const kbpkLen = version === 'D' ? 32 : 24;
  return { header: { ...c.header, algorithm }, key: randomBytes(keyLen), kbpk: randomBytes(kbpkLen) };
}

describe('TR-31 key blocks: properties (fast-check)', function () {
  this.timeout(60_000);

  it('unwrap(wrap(x)) gives back the header and the key, for B and D, with optional blocks and masking', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { header, key, kbpk } = material(c);
        const block = wrapTr31(kbpk, header, key, { maskedKeyLength: c.masked });
        const opened = unwrapTr31(kbpk, block);
        assert.deepEqual(opened.header, header);
        assert.ok(opened.key.equals(key));
        assert.equal(parseTr31Header(block).text.length % (header.version === 'D' ? 16 : 8), 0);
      }),
      { numRuns: 300 },
    );
  });

  it('a mutated block is refused with a TR-31 code, never accepted with other content, never another exception', () => {
    const mutation = fc.record({ at: fc.nat(), kind: fc.constantFrom('replace', 'insert', 'delete', 'truncate', 'flip'), ch: fc.constantFrom(...HEADER_CHARS.split(''), 'é', '\u0000', 'f') });
    fc.assert(
      fc.property(caseArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), (c, mutations) => {
        const { header, key, kbpk } = material(c);
        const block = wrapTr31(kbpk, header, key);
        let m = block;
        for (const mu of mutations) {
          const i = m.length === 0 ? 0 : mu.at % m.length;
          if (mu.kind === 'replace') m = m.slice(0, i) + mu.ch + m.slice(i + 1);
          else if (mu.kind === 'insert') m = m.slice(0, i) + mu.ch + m.slice(i);
          else if (mu.kind === 'delete') m = m.slice(0, i) + m.slice(i + 1);
          else if (mu.kind === 'truncate') m = m.slice(0, i);
          else m = m.slice(0, i) + String.fromCharCode(m.charCodeAt(i) ^ 1) + m.slice(i + 1);
        }
        try {
          const opened = unwrapTr31(kbpk, m);
          // Only a change the MAC does not see may pass: hex case in the body, which encodes the same bytes.
          assert.equal(m.toUpperCase(), block.toUpperCase(), 'a block that differs in content was accepted');
          assert.ok(opened.key.equals(key));
        } catch (e) {
          assert.ok(e instanceof Tr31Error, `threw ${String(e)}`);
          assert.ok(['TR31_MALFORMED', 'TR31_MAC_INVALID', 'TR31_UNSUPPORTED', 'TR31_KBPK_INVALID'].includes(e.code), e.code);
        }
      }),
      { numRuns: 1500 },
    );
  });
});
