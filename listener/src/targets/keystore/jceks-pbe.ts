import { createCipheriv, hash, randomBytes } from 'node:crypto';
import type { ClearBytes } from './clear-bytes';
import { integer, TAG, tlv } from './der';

/**
 * PBEWithMD5AndTripleDES, Sun's proprietary PBE that JCEKS uses for every
 * entry (com.sun.crypto.provider.PBES1Core, "DESede" branch). Each 4-byte
 * half of the 8-byte salt is hashed with the password (ASCII bytes, as
 * PBEKey encodes it): h = MD5(half || pw), then h = MD5(h || pw) for the
 * remaining iterations. The two 16-byte results give 32 bytes: the first
 * 24 are the DESede key, the last 8 the CBC IV; padding is PKCS#5.
 * If both halves are equal Java swaps bytes of the first half; we never
 * pick such a salt (newer JDKs refuse them for encryption as weak).
 */
export function deriveKeyAndIv(password: string, salt: Buffer, iterations: number, clear: ClearBytes): Buffer {
  const pw = Buffer.from(password, 'ascii');
  const out = clear.hold(Buffer.alloc(32));
  // One reusable input block (digest || password): crypto.hash on it costs half
  // of createHash per round, which is most of the time here (~1 s per entry at
  // Java's 200,000 iterations).
  const input = clear.hold(Buffer.alloc(16 + pw.length));
  pw.copy(input, 16);
  clear.hold(pw);
  for (let half = 0; half < 2; half++) {
    let h = hash('md5', clear.hold(Buffer.concat([salt.subarray(half * 4, half * 4 + 4), pw])), 'buffer');
    for (let i = 1; i < iterations; i++) {
      h.copy(input, 0);
      h.fill(0); // each intermediate digest is zeroed as soon as it is used
      h = hash('md5', input, 'buffer');
    }
    h.copy(out, half * 16);
    h.fill(0);
  }
  return out;
}

/** An 8-byte salt whose halves differ. */
export function newSalt(): Buffer {
  for (;;) {
    const salt = randomBytes(8);
    if (!salt.subarray(0, 4).equals(salt.subarray(4))) return salt;
  }
}

export interface PbeResult {
  /** DER PBEParameter { salt OCTET STRING, iterationCount INTEGER }, what Java stores as the cipher parameters. */
  readonly params: Buffer;
  readonly encrypted: Buffer;
}

export function pbeEncrypt(plain: Buffer, password: string, iterations: number, clear: ClearBytes): PbeResult {
  const salt = newSalt();
  const keyIv = deriveKeyAndIv(password, salt, iterations, clear);
  const cipher = createCipheriv('des-ede3-cbc', keyIv.subarray(0, 24), keyIv.subarray(24));
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  return { params: tlv(TAG.SEQUENCE, tlv(TAG.OCTET_STRING, salt), integer(iterations)), encrypted };
}
