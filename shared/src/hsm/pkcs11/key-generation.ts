import { createPublicKey } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { KeyHandle, KeyPairHandles, KeyPolicy, UnwrapTemplate } from '../hsm';
import { policyAttributes } from './templates';

const P = pkcs11js;

/** DER of OID 1.2.840.10045.3.1.7 (prime256v1). */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

export function generateAesKey(lib: pkcs11js.PKCS11, s: Buffer, lengthBytes: number, policy: KeyPolicy, kwpMechanism: number): Promise<KeyHandle> {
  const template = [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_VALUE_LEN, value: lengthBytes },
    ...policyAttributes(policy, false, kwpMechanism),
  ];
  return lib.C_GenerateKeyAsync(s, { mechanism: P.CKM_AES_KEY_GEN }, template);
}

/**
 * A generic secret for HMAC-SHA256 (tokens refuse CKK_SHA256_HMAC with
 * C_GenerateKey): sign and verify only, HMAC-SHA256 only, whatever else the
 * policy says about usages.
 */
export function generateHmacKey(lib: pkcs11js.PKCS11, s: Buffer, lengthBytes: number, policy: KeyPolicy, kwpMechanism: number): Promise<KeyHandle> {
  const only: KeyPolicy = {
    ...policy,
    encrypt: false,
    decrypt: false,
    wrap: false,
    unwrap: false,
    derive: false,
    sign: true,
    verify: true,
    allowedMechanisms: ['hmac-sha256'],
    unwrapTemplate: undefined,
  };
  const template = [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
    { type: P.CKA_VALUE_LEN, value: lengthBytes },
    ...policyAttributes(only, false, kwpMechanism),
  ];
  return lib.C_GenerateKeyAsync(s, { mechanism: P.CKM_GENERIC_SECRET_KEY_GEN }, template);
}

export function generateEcP256KeyPair(lib: pkcs11js.PKCS11, s: Buffer, policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
  const pub = [
    { type: P.CKA_TOKEN, value: policy.token },
    { type: P.CKA_LABEL, value: policy.label },
    { type: P.CKA_ID, value: policy.id },
    { type: P.CKA_EC_PARAMS, value: P256_PARAMS },
    { type: P.CKA_VERIFY, value: true },
  ];
  const priv = policyAttributes({ token: policy.token, label: policy.label, id: policy.id, sign: true }, true);
  return lib.C_GenerateKeyPairAsync(s, { mechanism: P.CKM_EC_KEY_PAIR_GEN }, pub, priv);
}

/**
 * An RSA pair whose private half can only unwrap (RSA-OAEP), and whose public
 * half can only wrap. `unwrapTemplate` fixes what the private half may unwrap.
 */
export function generateRsaTransportKeyPair(
  lib: pkcs11js.PKCS11,
  s: Buffer,
  bits: number,
  policy: { token: boolean; label: string; id: Buffer; unwrapTemplate?: UnwrapTemplate },
  kwpMechanism: number,
): Promise<KeyPairHandles> {
  const pub = [
    { type: P.CKA_TOKEN, value: policy.token },
    { type: P.CKA_LABEL, value: policy.label },
    { type: P.CKA_ID, value: policy.id },
    { type: P.CKA_MODULUS_BITS, value: bits },
    { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
    { type: P.CKA_WRAP, value: true },
    { type: P.CKA_ENCRYPT, value: false },
    { type: P.CKA_VERIFY, value: false },
  ];
  const priv = policyAttributes(
    // Not modifiable: CKA_DECRYPT switched on would let RSA-OAEP decrypt a root KEK message to clear.
    {
      token: policy.token,
      label: policy.label,
      id: policy.id,
      unwrap: true,
      modifiable: false,
      copyable: false,
      allowedMechanisms: ['rsa-oaep'],
      ...(policy.unwrapTemplate ? { unwrapTemplate: policy.unwrapTemplate } : {}),
    },
    true,
    kwpMechanism,
  );
  return lib.C_GenerateKeyPairAsync(s, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN }, pub, priv);
}

/** A session object for someone else's RSA public key (SPKI DER), usable only to wrap. */
export function importRsaWrappingKey(lib: pkcs11js.PKCS11, s: Buffer, spki: Buffer): KeyHandle {
  const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  if (jwk.kty !== 'RSA' || !jwk.n || !jwk.e) throw new KeyhubError('MESSAGE_MALFORMED', 'wrapping key is not an RSA public key');
  const template = [
    { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
    { type: P.CKA_TOKEN, value: false },
    { type: P.CKA_MODULUS, value: Buffer.from(jwk.n, 'base64url') },
    { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from(jwk.e, 'base64url') },
    { type: P.CKA_WRAP, value: true },
    { type: P.CKA_ENCRYPT, value: false },
    { type: P.CKA_VERIFY, value: false },
  ];
  return lib.C_CreateObject(s, template);
}
