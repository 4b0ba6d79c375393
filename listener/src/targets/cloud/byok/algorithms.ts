/**
 * The BYOK wrapping constructions the three clouds accept (FIELD-NOTES,
 * "Cloud BYOK formats"):
 * - `rsa-aes-kwp`: CKM_RSA_AES_KEY_WRAP = RSA-OAEP(wrapping key, ephemeral
 *   AES-256; hash H, MGF1(H), empty label) || AES-KWP(ephemeral, material).
 * - `rsa-oaep`: RSA-OAEP of the material itself, only when it fits
 *   (k - 2*hLen - 2 bytes) and never for private keys.
 */
export type OaepHashName = 'sha1' | 'sha256';

export interface ByokWrapAlgorithm {
  construction: 'rsa-aes-kwp' | 'rsa-oaep';
  hash: OaepHashName;
}

const HASH_LEN: Record<OaepHashName, number> = { sha1: 20, sha256: 32 };

/** Largest message RSA-OAEP can carry under a modulus of `modulusBytes`. */
export function oaepCapacity(modulusBytes: number, hash: OaepHashName): number {
  return modulusBytes - 2 * HASH_LEN[hash] - 2;
}

export function describeWrap(a: ByokWrapAlgorithm): string {
  return `${a.construction === 'rsa-aes-kwp' ? 'RSA_AES_KEY_WRAP' : 'RSAES_OAEP'}_${a.hash === 'sha1' ? 'SHA_1' : 'SHA_256'}`;
}
