import { strict as assert } from 'node:assert';
import { createCipheriv, randomBytes } from 'node:crypto';
import * as independent from 'shamir-secret-sharing';
import { aesValueKcv, formatPart, KeyhubError, parsePart, shamirCombine, shamirSplit, xorCombine, type KeyPart } from '@keyhub/shared';

/** The ANSI X9.24 / TR-31 AES KCV the HSMs compute, from raw AES-ECB only (kcv.ts): CMAC of a zero block. */
function kcvByOpenSslPrimitives(key: Buffer): string {
  const e = (d: Buffer) => createCipheriv('aes-256-ecb', key, null).setAutoPadding(false).update(d);
  const l = e(Buffer.alloc(16));
  const k1 = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) k1[i] = ((l[i] << 1) | (i < 15 ? l[i + 1] >> 7 : 0)) & 0xff;
  if (l[0] & 0x80) k1[15] ^= 0x87;
  return e(k1).subarray(0, 3).toString('hex');
}

/** `shamir-secret-sharing` (an independent, audited implementation) writes a share as y bytes then x. */
const toTheirs = (p: KeyPart) => new Uint8Array(Buffer.concat([p.value, Buffer.from([p.x])]));
const fromTheirs = (s: Uint8Array): KeyPart => ({ x: s[s.length - 1], value: Buffer.from(s.subarray(0, s.length - 1)) });

function subsets<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [head, ...rest] = items;
  return [...subsets(rest, k - 1).map((s) => [head, ...s]), ...subsets(rest, k)];
}

describe('split knowledge: XOR components and Shamir shares of a root KEK', () => {
  it('XOR of the components is the key, and a component KCV is the AES KCV of the component as a key', () => {
    const parts = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const key = xorCombine(parts);
    for (let i = 0; i < 32; i++) assert.equal(key[i], parts[0][i] ^ parts[1][i] ^ parts[2][i]);
    for (const p of [...parts, key]) assert.equal(aesValueKcv(p), kcvByOpenSslPrimitives(p));
    assert.throws(
      () => xorCombine([parts[0]]),
      (e: unknown) => e instanceof KeyhubError && e.code === 'COMPONENT_INVALID',
    );
  });

  for (const [m, n] of [
    [2, 2],
    [2, 3],
    [3, 5],
  ] as const) {
    it(`Shamir ${m} of ${n}: every ${m}-subset rebuilds the key, with ours and with the independent implementation; fewer do not`, async () => {
      const secret = randomBytes(32);
      const coefficients = Array.from({ length: m - 1 }, () => randomBytes(32));
      const shares = shamirSplit(secret, coefficients, n);
      assert.deepEqual(
        shares.map((s) => s.x),
        Array.from({ length: n }, (_, i) => i + 1),
      );
      for (const subset of subsets(shares, m)) {
        assert.ok(shamirCombine(subset).equals(secret));
        assert.ok(Buffer.from(await independent.combine(subset.map(toTheirs))).equals(secret), 'the independent combine rebuilds our shares');
      }
      // Fewer than m shares interpolate to something else (a different polynomial through them).
      for (const subset of subsets(shares, m - 1).filter((s) => s.length >= 2)) assert.ok(!shamirCombine(subset).equals(secret));
      // And the other way round: shares the independent implementation made (random x) combine with ours.
      const theirs = (await independent.split(new Uint8Array(secret), n, m)).map(fromTheirs);
      for (const subset of subsets(theirs, m)) assert.ok(shamirCombine(subset).equals(secret));
    });
  }

  it('a custodian reads and types a part as grouped hex; malformed input is refused with COMPONENT_INVALID', () => {
    const value = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
    const xorText = formatPart('xor', { x: 2, value });
    assert.equal(xorText, '0011 2233 4455 6677 8899 AABB CCDD EEFF 0011 2233 4455 6677 8899 AABB CCDD EEFF');
    assert.deepEqual(parsePart('xor', Buffer.from(xorText.toLowerCase()), 2), { x: 2, value });
    const shareText = formatPart('shamir', { x: 3, value });
    assert.match(shareText, /^3-0011 2233/);
    assert.deepEqual(parsePart('shamir', Buffer.from(shareText), 0), { x: 3, value });
    const refused = (scheme: 'xor' | 'shamir', text: string) =>
      assert.throws(
        () => parsePart(scheme, Buffer.from(text), 1),
        (e: unknown) => e instanceof KeyhubError && e.code === 'COMPONENT_INVALID',
      );
    refused('xor', xorText.slice(0, -1));
    refused('xor', `${xorText}0`);
    refused('xor', xorText.replace('A', 'G'));
    refused('shamir', xorText);
    refused('shamir', `0-${xorText}`);
    assert.throws(
      () => shamirCombine([shares1(value), shares1(value)]),
      (e: unknown) => e instanceof KeyhubError && e.code === 'COMPONENT_INVALID',
    );
  });
});

function shares1(value: Buffer): KeyPart {
  return { x: 1, value };
}
