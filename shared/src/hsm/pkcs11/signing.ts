import { createHash } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import type { KeyHandle } from '../hsm';

const P = pkcs11js;

/** ECDSA over a digest the caller computed; the signature as r || s (IEEE P1363). */
export function signDigestEcdsa(lib: pkcs11js.PKCS11, s: Buffer, privateKey: KeyHandle, digest: Buffer): Promise<Buffer> {
  lib.C_SignInit(s, { mechanism: P.CKM_ECDSA }, privateKey);
  return lib.C_SignAsync(s, digest, Buffer.alloc(128));
}

/** AES-CMAC (a KCV is the CMAC of a zero block). */
export function aesCmac(lib: pkcs11js.PKCS11, s: Buffer, key: KeyHandle, data: Buffer): Promise<Buffer> {
  lib.C_SignInit(s, { mechanism: P.CKM_AES_CMAC }, key);
  return lib.C_SignAsync(s, data, Buffer.alloc(16));
}

const HMAC_SHA256 = { mechanism: P.CKM_SHA256_HMAC };

/** HMAC-SHA256 of `data` (32 bytes). */
export function hmacSha256(lib: pkcs11js.PKCS11, s: Buffer, key: KeyHandle, data: Buffer): Promise<Buffer> {
  lib.C_SignInit(s, HMAC_SHA256, key);
  return lib.C_SignAsync(s, data, Buffer.alloc(32));
}

/** Synchronous on purpose where it runs on the translate worker; false for a tag that does not match. */
export function verifyHmacSha256Sync(lib: pkcs11js.PKCS11, s: Buffer, key: KeyHandle, data: Buffer, tag: Buffer): boolean {
  lib.C_VerifyInit(s, HMAC_SHA256, key);
  try {
    return lib.C_Verify(s, data, tag);
  } catch (err) {
    if (err instanceof P.Pkcs11Error && (err.code === P.CKR_SIGNATURE_INVALID || err.code === P.CKR_SIGNATURE_LEN_RANGE)) return false;
    throw err;
  }
}

/** AES-ECB over whole 16-byte blocks, one direction. */
export function aesEcb(lib: pkcs11js.PKCS11, s: Buffer, key: KeyHandle, data: Buffer, direction: 'encrypt' | 'decrypt'): Promise<Buffer> {
  const mechanism = { mechanism: P.CKM_AES_ECB };
  if (direction === 'encrypt') {
    lib.C_EncryptInit(s, mechanism, key);
    return lib.C_EncryptAsync(s, data, Buffer.alloc(data.length));
  }
  lib.C_DecryptInit(s, mechanism, key);
  return lib.C_DecryptAsync(s, data, Buffer.alloc(data.length));
}

/** TDES-ECB encryption of whole 8-byte blocks (the TDES KCV is that of a zero block). */
export function tdesEcbEncrypt(lib: pkcs11js.PKCS11, s: Buffer, key: KeyHandle, data: Buffer): Promise<Buffer> {
  lib.C_EncryptInit(s, { mechanism: P.CKM_DES3_ECB }, key);
  return lib.C_EncryptAsync(s, data, Buffer.alloc(data.length));
}

/**
 * A signature by a private key over `data`: RSA PKCS#1 v1.5 with SHA-256
 * (CKM_SHA256_RSA_PKCS, hashed in the token), EC with CKM_ECDSA over the
 * SHA-256 digest (SoftHSM2 has no CKM_ECDSA_SHA256), raw r||s.
 */
export function signWithPrivateKey(lib: pkcs11js.PKCS11, s: Buffer, privateKey: KeyHandle, keyType: 'rsa' | 'ec', data: Buffer): Promise<Buffer> {
  if (keyType === 'rsa') {
    lib.C_SignInit(s, { mechanism: P.CKM_SHA256_RSA_PKCS }, privateKey);
    return lib.C_SignAsync(s, data, Buffer.alloc(1024));
  }
  lib.C_SignInit(s, { mechanism: P.CKM_ECDSA }, privateKey);
  return lib.C_SignAsync(s, createHash('sha256').update(data).digest(), Buffer.alloc(160));
}
