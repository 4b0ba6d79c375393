import { createPublicKey } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { EcCurveName, KeyHandle, KeyPairHandles, KeyPairSpec, KeyPolicy, SecretKeyType, UnwrapTemplate } from '../hsm';
import { policyAttributes } from './templates';

const P = pkcs11js;

/** DER of OID 1.2.840.10045.3.1.7 (prime256v1). */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

/** CKA_EC_PARAMS (DER of the named curve's OID): P-256, P-384 (1.3.132.0.34), P-521 (1.3.132.0.35). */
export const EC_PARAMS: Record<EcCurveName, Buffer> = {
  'P-256': P256_PARAMS,
  'P-384': Buffer.from('06052b81040022', 'hex'),
  'P-521': Buffer.from('06052b81040023', 'hex'),
};

const SECRET_GEN: Record<SecretKeyType, { mechanism: number; keyType: number; valueLen: boolean }> = {
  aes: { mechanism: P.CKM_AES_KEY_GEN, keyType: P.CKK_AES, valueLen: true },
  // TDES lengths are fixed by the mechanism: tokens refuse CKA_VALUE_LEN for them.
  des2: { mechanism: P.CKM_DES2_KEY_GEN, keyType: P.CKK_DES2, valueLen: false },
  des3: { mechanism: P.CKM_DES3_KEY_GEN, keyType: P.CKK_DES3, valueLen: false },
  generic: { mechanism: P.CKM_GENERIC_SECRET_KEY_GEN, keyType: P.CKK_GENERIC_SECRET, valueLen: true },
};

/** A secret key of a type Keyhub distributes, with exactly the policy's attributes. */
export function generateSecretKey(lib: pkcs11js.PKCS11, s: Buffer, type: SecretKeyType, lengthBytes: number, policy: KeyPolicy, kwpMechanism: number): Promise<KeyHandle> {
  const gen = SECRET_GEN[type];
  const template = [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: gen.keyType },
    ...(gen.valueLen ? [{ type: P.CKA_VALUE_LEN, value: lengthBytes }] : []),
    ...policyAttributes(policy, false, kwpMechanism),
  ];
  return lib.C_GenerateKeyAsync(s, { mechanism: gen.mechanism }, template);
}

/** The public half's attributes from a policy: a public key only verifies, encrypts, wraps (never sensitive or private). */
export function publicKeyAttributes(policy: KeyPolicy): pkcs11js.Template {
  const t: pkcs11js.Template = [
    { type: P.CKA_TOKEN, value: policy.token },
    { type: P.CKA_PRIVATE, value: false },
    { type: P.CKA_VERIFY, value: policy.verify ?? false },
    { type: P.CKA_ENCRYPT, value: policy.encrypt ?? false },
    { type: P.CKA_WRAP, value: policy.wrap ?? false },
    { type: P.CKA_DERIVE, value: false },
  ];
  if (policy.label !== undefined) t.push({ type: P.CKA_LABEL, value: policy.label });
  if (policy.id !== undefined) t.push({ type: P.CKA_ID, value: policy.id });
  return t;
}

/** An RSA (e = 65537) or EC pair with the attributes each policy gives its half. */
export function generateKeyPair(lib: pkcs11js.PKCS11, s: Buffer, spec: KeyPairSpec, policy: { private: KeyPolicy; public: KeyPolicy }, kwpMechanism: number): Promise<KeyPairHandles> {
  const pub =
    spec.type === 'rsa'
      ? [{ type: P.CKA_MODULUS_BITS, value: spec.bits }, { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, ...publicKeyAttributes(policy.public)]
      : [{ type: P.CKA_EC_PARAMS, value: EC_PARAMS[spec.curve] }, ...publicKeyAttributes(policy.public)];
  const priv = policyAttributes(policy.private, true, kwpMechanism);
  const mechanism = spec.type === 'rsa' ? P.CKM_RSA_PKCS_KEY_PAIR_GEN : P.CKM_EC_KEY_PAIR_GEN;
  return lib.C_GenerateKeyPairAsync(s, { mechanism }, pub, priv);
}

export function generateAesKey(lib: pkcs11js.PKCS11, s: Buffer, lengthBytes: number, policy: KeyPolicy, kwpMechanism: number): Promise<KeyHandle> {
  const template = [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_VALUE_LEN, value: lengthBytes },
    ...policyAttributes(policy, false, kwpMechanism),
  ];
  return lib.C_GenerateKeyAsync(s, { mechanism: P.CKM_AES_KEY_GEN }, template);
}

/** An AES key from its value (see Hsm.createAesKey); 16, 24 or 32 bytes. */
export function createAesKeyObject(lib: pkcs11js.PKCS11, s: Buffer, value: Buffer, policy: KeyPolicy, kwpMechanism: number): KeyHandle {
  if (![16, 24, 32].includes(value.length)) throw new KeyhubError('KEY_LENGTH_INVALID', 'an AES key is 16, 24 or 32 bytes');
  const template = [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE, value }, ...policyAttributes(policy, false, kwpMechanism)];
  return lib.C_CreateObject(s, template);
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
