import type { Hsm, KeyHandle } from './hsm/hsm';
/**
 * Key check values. AES: the first 3 bytes of AES-CMAC over one zero block
 * (the method of ANSI X9.24-1:2017 / TR-31), computed inside an HSM. The CMAC
 * of one full block M is E_K(M xor K1) with K1 = dbl(E_K(0)); that identity
 * lets anyone with only raw AES-ECB (pkcs11-tool, OpenSSL) recompute it.
 */
export const KCV_BYTES = 3;

export function kcvHex(mac: Buffer): string {
  return mac.subarray(0, KCV_BYTES).toString('hex');
}

/** dbl() of NIST SP 800-38B: shift left one bit, xor 0x87 into the last byte on carry. */
export function cmacSubkey(l: Buffer): Buffer {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) out[i] = ((l[i] << 1) | (i < 15 ? l[i + 1] >> 7 : 0)) & 0xff;
  if (l[0] & 0x80) out[15] ^= 0x87;
  return out;
}

const ZERO_BLOCK = Buffer.alloc(16);

/** AES KCV computed in the HSM; the key handle must allow CKA_SIGN (use a session copy for keys that must not). */
export async function aesKcv(hsm: Hsm, key: KeyHandle): Promise<string> {
  return kcvHex(await hsm.aesCmac(key, ZERO_BLOCK));
}
