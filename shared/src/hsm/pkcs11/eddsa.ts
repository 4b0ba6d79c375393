import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { KeyHandle, KeyPairHandles } from '../hsm';
import { policyAttributes } from './templates';

const P = pkcs11js;

/**
 * PKCS#11 3.0 EdDSA, by number: pkcs11js 2.1 has no constants for it.
 * SoftHSM2 2.6.1 offers all three (checked here: keygen, sign, and the
 * signature verifies under node:crypto's Ed25519).
 */
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
export const CKK_EC_EDWARDS = 0x40;

/** DER of OID 1.3.101.112 (id-Ed25519), the CKA_EC_PARAMS of an Ed25519 key. */
const ED25519_PARAMS = Buffer.from('06032b6570', 'hex');

/** An Ed25519 signing pair: the private half signs only, is sensitive and never extractable. */
export function generateEd25519KeyPair(lib: pkcs11js.PKCS11, s: Buffer, policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
  const pub = [
    { type: P.CKA_TOKEN, value: policy.token },
    { type: P.CKA_LABEL, value: policy.label },
    { type: P.CKA_ID, value: policy.id },
    { type: P.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
    { type: P.CKA_EC_PARAMS, value: ED25519_PARAMS },
    { type: P.CKA_VERIFY, value: true },
  ];
  const priv = [...policyAttributes({ token: policy.token, label: policy.label, id: policy.id, sign: true }, true), { type: P.CKA_KEY_TYPE, value: CKK_EC_EDWARDS }];
  return lib.C_GenerateKeyPairAsync(s, { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN }, pub, priv);
}

/** Pure EdDSA (RFC 8032 Ed25519) over the whole message; 64 bytes. */
export function signEddsa(lib: pkcs11js.PKCS11, s: Buffer, privateKey: KeyHandle, data: Buffer): Promise<Buffer> {
  lib.C_SignInit(s, { mechanism: CKM_EDDSA }, privateKey);
  return lib.C_SignAsync(s, data, Buffer.alloc(64));
}

/**
 * The raw 32-byte Ed25519 public key. CKA_EC_POINT holds it as a DER OCTET
 * STRING (04 20 ...) in SoftHSM2; some tokens return the bare 32 bytes.
 */
export function readEd25519PublicKey(lib: pkcs11js.PKCS11, s: Buffer, publicKey: KeyHandle): Buffer {
  const [point] = lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_EC_POINT }]);
  const v = point.value as Buffer | undefined;
  if (v && v.length === 32) return Buffer.from(v);
  if (v && v.length === 34 && v[0] === 0x04 && v[1] === 0x20) return Buffer.from(v.subarray(2));
  throw new KeyhubError('HSM_ERROR', 'the object is not an Ed25519 public key');
}
