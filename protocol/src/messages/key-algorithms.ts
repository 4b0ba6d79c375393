import { KEY_LENGTH_BYTES, type KeyAlgorithm, type KeyUsage } from './common';

/**
 * What each key algorithm is, as hub and listener both need it: its PKCS#11
 * class and key type, the usages it can have, its default usages and how
 * its KCV is computed. One table, so that the hub refuses at creation what
 * the target would refuse at import.
 *
 * KCV methods (3 bytes, hex), each computed in an HSM, at the hub and again
 * at the target:
 * - `aes-cmac`: AES-CMAC of one zero block (ANSI X9.24-1:2017, TR-31).
 * - `tdes-ecb`: TDES-ECB encryption of one zero block (8 bytes), the
 *   classic TDES KCV.
 * - `hmac-sha256`: HMAC-SHA256 keyed with the secret over 16 zero bytes.
 *   HMAC and generic secrets have no standard KCV; this one needs only
 *   CKA_SIGN on a session copy and does not reveal the key.
 * - `spki-sha256`: SHA-256 of the public key as DER SubjectPublicKeyInfo.
 *   The public key is public, so this alone proves nothing about the
 *   private key; the target therefore also signs a fixed challenge with the
 *   unwrapped private key in its token and verifies it against the
 *   package's public key before it accepts the KCV (KEY_PAIR_MISMATCH).
 */
export type KeyClassName = 'secret' | 'private';
export type Pkcs11KeyType = 'aes' | 'des2' | 'des3' | 'generic' | 'rsa' | 'ec';
export type KcvMethod = 'aes-cmac' | 'tdes-ecb' | 'hmac-sha256' | 'spki-sha256';
export type EcCurve = 'P-256' | 'P-384' | 'P-521';

export interface KeyAlgorithmInfo {
  keyClass: KeyClassName;
  keyType: Pkcs11KeyType;
  /** Secret length in bytes, or key size in bytes of a pair (see KEY_LENGTH_BYTES). */
  lengthBytes: number;
  usages: readonly KeyUsage[];
  defaultUsages: readonly KeyUsage[];
  kcv: KcvMethod;
  /** RSA modulus bits. */
  rsaBits?: number;
  curve?: EcCurve;
}

const SYMMETRIC: readonly KeyUsage[] = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'];
const ENC: readonly KeyUsage[] = ['encrypt', 'decrypt'];
const MAC: readonly KeyUsage[] = ['sign', 'verify'];

function aes(alg: KeyAlgorithm): KeyAlgorithmInfo {
  return { keyClass: 'secret', keyType: 'aes', lengthBytes: KEY_LENGTH_BYTES[alg], usages: SYMMETRIC, defaultUsages: ENC, kcv: 'aes-cmac' };
}
function tdes(alg: KeyAlgorithm, keyType: 'des2' | 'des3'): KeyAlgorithmInfo {
  return { keyClass: 'secret', keyType, lengthBytes: KEY_LENGTH_BYTES[alg], usages: SYMMETRIC, defaultUsages: ENC, kcv: 'tdes-ecb' };
}
/** An HMAC key only signs and verifies; a generic secret may also derive. Both are CKK_GENERIC_SECRET (tokens refuse to generate CKK_SHA*_HMAC). */
function generic(alg: KeyAlgorithm, hmac: boolean): KeyAlgorithmInfo {
  const usages: readonly KeyUsage[] = hmac ? MAC : ['sign', 'verify', 'derive'];
  return { keyClass: 'secret', keyType: 'generic', lengthBytes: KEY_LENGTH_BYTES[alg], usages, defaultUsages: hmac ? MAC : ['derive'], kcv: 'hmac-sha256' };
}
/** Of a pair: sign/decrypt/unwrap/derive go to the private key, verify/encrypt/wrap to the public key. */
function rsa(alg: KeyAlgorithm, bits: number): KeyAlgorithmInfo {
  return {
    keyClass: 'private',
    keyType: 'rsa',
    lengthBytes: KEY_LENGTH_BYTES[alg],
    usages: ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap'],
    defaultUsages: MAC,
    kcv: 'spki-sha256',
    rsaBits: bits,
  };
}
function ec(alg: KeyAlgorithm, curve: EcCurve): KeyAlgorithmInfo {
  return { keyClass: 'private', keyType: 'ec', lengthBytes: KEY_LENGTH_BYTES[alg], usages: ['sign', 'verify', 'derive'], defaultUsages: MAC, kcv: 'spki-sha256', curve };
}

export const KEY_ALGORITHM_INFO: Record<KeyAlgorithm, KeyAlgorithmInfo> = {
  'AES-128': aes('AES-128'),
  'AES-192': aes('AES-192'),
  'AES-256': aes('AES-256'),
  'TDES-2KEY': tdes('TDES-2KEY', 'des2'),
  'TDES-3KEY': tdes('TDES-3KEY', 'des3'),
  'HMAC-SHA256': generic('HMAC-SHA256', true),
  'HMAC-SHA384': generic('HMAC-SHA384', true),
  'HMAC-SHA512': generic('HMAC-SHA512', true),
  'GENERIC-256': generic('GENERIC-256', false),
  'GENERIC-384': generic('GENERIC-384', false),
  'GENERIC-512': generic('GENERIC-512', false),
  'RSA-2048': rsa('RSA-2048', 2048),
  'RSA-3072': rsa('RSA-3072', 3072),
  'RSA-4096': rsa('RSA-4096', 4096),
  'EC-P256': ec('EC-P256', 'P-256'),
  'EC-P384': ec('EC-P384', 'P-384'),
  'EC-P521': ec('EC-P521', 'P-521'),
};

/** Usages that go to the public key of a pair; the others go to the private key. */
export const PUBLIC_KEY_USAGES: readonly KeyUsage[] = ['verify', 'encrypt', 'wrap'];

export function isKeyPair(algorithm: KeyAlgorithm): boolean {
  return KEY_ALGORITHM_INFO[algorithm].keyClass === 'private';
}

/** The usages of `usages` that `algorithm` cannot have (empty: all fine). */
export function invalidUsages(algorithm: KeyAlgorithm, usages: readonly string[]): string[] {
  const allowed = KEY_ALGORITHM_INFO[algorithm].usages as readonly string[];
  return usages.filter((u) => !allowed.includes(u));
}
