import { createHash } from 'node:crypto';
import type { Hsm, KeyHandle } from './hsm/hsm';
/**
 * Key check values: 3 bytes, as hex. One method per kind of key
 * (protocol/src/messages/key-algorithms.ts names which key uses which), each
 * computed inside an HSM from the key as it is there, at the hub when the key
 * is made and again at the target after the import:
 *
 * - AES: the first 3 bytes of AES-CMAC over one zero block (the method of
 *   ANSI X9.24-1:2017 / TR-31). The CMAC of one full block M is E_K(M xor K1)
 *   with K1 = dbl(E_K(0)); that identity lets anyone with only raw AES-ECB
 *   (pkcs11-tool, OpenSSL) recompute it.
 * - TDES (2-key and 3-key): the first 3 bytes of TDES-ECB over one zero block
 *   (8 bytes), the classic KCV of ANSI X9.24-1.
 * - HMAC and generic secrets: the first 3 bytes of HMAC-SHA256 keyed with the
 *   secret over 16 zero bytes. There is no standard KCV for them; this one
 *   needs only CKA_SIGN on a session copy and works for every length.
 * - Key pairs (RSA, EC): the first 3 bytes of SHA-256 over the public key's
 *   DER SubjectPublicKeyInfo. Public data, so it is no proof of the private
 *   key by itself: the target also signs a challenge with the unwrapped
 *   private key in its token and verifies it against that public key.
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
const TDES_ZERO_BLOCK = Buffer.alloc(8);

/** AES KCV computed in the HSM; the key handle must allow CKA_SIGN (use a session copy for keys that must not). */
export async function aesKcv(hsm: Hsm, key: KeyHandle): Promise<string> {
  return kcvHex(await hsm.aesCmac(key, ZERO_BLOCK));
}

/** TDES KCV computed in the HSM; the key handle must allow CKA_ENCRYPT. */
export async function tdesKcv(hsm: Hsm, key: KeyHandle): Promise<string> {
  return kcvHex(await hsm.tdesEcbEncrypt(key, TDES_ZERO_BLOCK));
}

/** KCV of an HMAC or generic secret, computed in the HSM; the key handle must allow CKA_SIGN. */
export async function hmacKcv(hsm: Hsm, key: KeyHandle): Promise<string> {
  return kcvHex(await hsm.hmacSha256(key, ZERO_BLOCK));
}

/** KCV of a key pair: from its public key (DER SPKI), so no HSM is needed. */
export function spkiKcv(spki: Buffer): string {
  return kcvHex(createHash('sha256').update(spki).digest());
}

export type SecretKcvMethod = 'aes-cmac' | 'tdes-ecb' | 'hmac-sha256';

/** The KCV of a secret key by the method of its algorithm. */
export function secretKcv(hsm: Hsm, key: KeyHandle, method: SecretKcvMethod): Promise<string> {
  if (method === 'aes-cmac') return aesKcv(hsm, key);
  if (method === 'tdes-ecb') return tdesKcv(hsm, key);
  return hmacKcv(hsm, key);
}
