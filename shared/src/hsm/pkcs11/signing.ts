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
