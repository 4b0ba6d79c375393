import { createCipheriv } from 'node:crypto';
import { KeyhubError } from './errors';
import { cmacSubkey, kcvHex } from './kcv';
import { wipe } from './secrets';

/**
 * Split knowledge for root KEKs (DESIGN.md "Root KEK exchange", method 2):
 * a 32-byte AES key held by nobody whole, as either
 *
 * - XOR components (PCI style): N random values whose XOR is the key; all N
 *   are needed, any N-1 say nothing about it;
 * - Shamir shares (M of N) over GF(2^8) with the AES field polynomial
 *   x^8 + x^4 + x^3 + x + 1, byte by byte, at x = 1..N; any M rebuild the
 *   key, M-1 say nothing about it.
 *
 * Pure functions on bytes. The callers hold these values in memory only for
 * as long as a ceremony step takes and wipe them (`wipe`); the hub derives
 * them inside its HSM, the listener combines what custodians typed.
 */
export const COMPONENT_BYTES = 32;

export type SplitScheme = 'xor' | 'shamir';

/** One custodian's part: x is the share's point (its index, 1-based, also for XOR components). */
export interface KeyPart {
  x: number;
  value: Buffer;
}

/** KCV of a 32-byte part or key as an AES-256 key: AES-CMAC of a zero block, as the HSMs compute for AES keys (kcv.ts). */
export function aesValueKcv(value: Buffer): string {
  if (value.length !== COMPONENT_BYTES) throw new KeyhubError('COMPONENT_INVALID', `a component is ${COMPONENT_BYTES} bytes`);
  const ecb = (data: Buffer) => {
    const c = createCipheriv('aes-256-ecb', value, null).setAutoPadding(false);
    return Buffer.concat([c.update(data), c.final()]);
  };
  const l = ecb(Buffer.alloc(16));
  const k1 = cmacSubkey(l);
  // CMAC of one full zero block is E_K(0 xor K1).
  const mac = ecb(k1);
  const kcv = kcvHex(mac);
  wipe(l, k1, mac);
  return kcv;
}

/** XOR of equal-length values, in a new buffer. */
export function xorCombine(values: Buffer[]): Buffer {
  if (values.length < 2) throw new KeyhubError('COMPONENT_INVALID', 'XOR needs two components at least');
  const out = Buffer.alloc(values[0].length);
  for (const v of values) {
    if (v.length !== out.length) throw new KeyhubError('COMPONENT_INVALID', 'components differ in length');
    for (let i = 0; i < out.length; i++) out[i] ^= v[i];
  }
  return out;
}

// GF(2^8) with the AES polynomial; 3 generates the multiplicative group.
const EXP = new Uint8Array(510);
const LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    const doubled = ((x << 1) ^ (x & 0x80 ? 0x1b : 0)) & 0xff;
    x = doubled ^ x;
  }
  for (let i = 255; i < 510; i++) EXP[i] = EXP[i - 255];
}

function mul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]];
}

function div(a: number, b: number): number {
  if (b === 0) throw new KeyhubError('INTERNAL', 'division by zero in GF(256)');
  return a === 0 ? 0 : EXP[LOG[a] + 255 - LOG[b]];
}

/**
 * Shamir shares of `secret` at x = 1..n for threshold m. `coefficients`
 * holds the m-1 higher coefficients, each as long as the secret (uniformly
 * random: the hub derives them in its HSM). Byte i of share x is
 * f_i(x) = secret[i] + c1[i]·x + ... + c_{m-1}[i]·x^{m-1}.
 */
export function shamirSplit(secret: Buffer, coefficients: Buffer[], n: number): KeyPart[] {
  const m = coefficients.length + 1;
  if (m < 2 || n < m || n > 255) throw new KeyhubError('COMPONENT_INVALID', `cannot make ${n} shares with threshold ${m}`);
  if (coefficients.some((c) => c.length !== secret.length)) throw new KeyhubError('COMPONENT_INVALID', 'coefficients must be as long as the secret');
  const parts: KeyPart[] = [];
  for (let x = 1; x <= n; x++) {
    const value = Buffer.alloc(secret.length);
    for (let i = 0; i < secret.length; i++) {
      // Horner, highest coefficient first.
      let y = 0;
      for (let j = coefficients.length - 1; j >= 0; j--) y = mul(y ^ coefficients[j][i], x);
      value[i] = y ^ secret[i];
    }
    parts.push({ x, value });
  }
  return parts;
}

/** The secret from m shares (Lagrange interpolation at 0). Distinct, non-zero x; equal lengths. */
export function shamirCombine(parts: KeyPart[]): Buffer {
  if (parts.length < 2) throw new KeyhubError('COMPONENT_INVALID', 'Shamir needs two shares at least');
  const xs = parts.map((p) => p.x);
  if (xs.some((x) => !Number.isInteger(x) || x < 1 || x > 255) || new Set(xs).size !== xs.length) throw new KeyhubError('COMPONENT_INVALID', 'share indexes must be distinct, 1 to 255');
  const len = parts[0].value.length;
  if (parts.some((p) => p.value.length !== len)) throw new KeyhubError('COMPONENT_INVALID', 'shares differ in length');
  const weights = xs.map((xi, i) => {
    let w = 1;
    xs.forEach((xj, j) => {
      if (j !== i) w = mul(w, div(xj, xj ^ xi));
    });
    return w;
  });
  const out = Buffer.alloc(len);
  for (let b = 0; b < len; b++) {
    let s = 0;
    for (let i = 0; i < parts.length; i++) s ^= mul(parts[i].value[b], weights[i]);
    out[b] = s;
  }
  return out;
}

/**
 * How a custodian reads and types a part: upper-case hex in groups of four,
 * a Shamir share prefixed by its index (`2-ABCD EF01 ...`). Parsing ignores
 * spaces and case.
 */
export function formatPart(scheme: SplitScheme, part: KeyPart): string {
  const groups =
    part.value
      .toString('hex')
      .toUpperCase()
      .match(/.{1,4}/g) ?? [];
  return `${scheme === 'shamir' ? `${part.x}-` : ''}${groups.join(' ')}`;
}

/**
 * A part as typed, from the bytes of the input (never a JS string, which
 * could not be wiped): hex digits, spaces ignored, a Shamir share first its
 * index and '-'. The caller wipes `input`; the value is a new buffer.
 */
export function parsePart(scheme: SplitScheme, input: Buffer, xorIndex: number): KeyPart {
  const digits = Buffer.alloc(input.length);
  let n = 0;
  let x = xorIndex;
  let sawDash = false;
  try {
    for (const c of input) {
      if (c === 0x20 || c === 0x09) continue;
      if (c === 0x2d && scheme === 'shamir' && !sawDash) {
        // What came before the dash is the share's index, in decimal.
        const index = digits.subarray(0, n).toString('latin1');
        if (!/^\d{1,3}$/.test(index)) throw malformed(scheme);
        x = Number(index);
        n = 0;
        sawDash = true;
        continue;
      }
      const isHex = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
      if (!isHex) throw malformed(scheme);
      digits[n++] = c;
    }
    if ((scheme === 'shamir' && !sawDash) || n !== COMPONENT_BYTES * 2) throw malformed(scheme);
    if (x < 1 || x > 255) throw new KeyhubError('COMPONENT_INVALID', 'a share index is 1 to 255');
    const value = Buffer.alloc(COMPONENT_BYTES);
    for (let i = 0; i < COMPONENT_BYTES; i++) value[i] = (hexNibble(digits[2 * i]) << 4) | hexNibble(digits[2 * i + 1]);
    return { x, value };
  } finally {
    wipe(digits);
  }
}

function hexNibble(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}

function malformed(scheme: SplitScheme): KeyhubError {
  return new KeyhubError('COMPONENT_INVALID', scheme === 'shamir' ? `a share is its index, '-', and ${COMPONENT_BYTES * 2} hex digits` : `a component is ${COMPONENT_BYTES * 2} hex digits`);
}
