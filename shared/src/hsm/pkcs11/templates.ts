/**
 * PKCS#11 templates and checks shared by the adapter (pkcs11-hsm.ts) and the
 * translateKwp worker thread, so that both create objects with exactly the
 * same attributes and refuse the same blobs.
 */
import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { KeyPolicy, MechanismName, UnwrapTemplate, WrappedKeyType } from '../hsm';
import { attributeArray, ulong } from './array-attributes';

const P = pkcs11js;

/** The token's code for each mechanism the port names; only KWP differs between tokens (HsmConfig.kwpMechanism). */
export function mechanismCode(name: MechanismName, kwpMechanism: number): number {
  switch (name) {
    case 'kwp':
      return kwpMechanism;
    case 'aes-cmac':
      return P.CKM_AES_CMAC;
    case 'rsa-oaep':
      return P.CKM_RSA_PKCS_OAEP;
    case 'hmac-sha256':
      return P.CKM_SHA256_HMAC;
  }
}

/** CKA_ALLOWED_MECHANISMS: an array of CK_MECHANISM_TYPE (no pointers, so a plain value). */
function allowedMechanisms(names: MechanismName[], kwpMechanism: number): Buffer {
  return Buffer.concat(names.map((n) => ulong(mechanismCode(n, kwpMechanism))));
}

/** The CK_ATTRIBUTE[] of an unwrap template; built once per distinct template (array-attributes.ts). */
export function unwrapTemplateValue(t: UnwrapTemplate, kwpMechanism: number): Buffer {
  const bool = (v: boolean) => Buffer.from([v ? 1 : 0]);
  const raw: Array<{ type: number; value: Buffer }> = [];
  if (t.class !== 'any') raw.push({ type: P.CKA_CLASS, value: ulong(t.class === 'private' ? P.CKO_PRIVATE_KEY : P.CKO_SECRET_KEY) });
  if (t.keyType === 'aes') raw.push({ type: P.CKA_KEY_TYPE, value: ulong(P.CKK_AES) });
  const flags: Array<[keyof UnwrapTemplate, number]> = [
    ['token', P.CKA_TOKEN],
    ['private', P.CKA_PRIVATE],
    ['sensitive', P.CKA_SENSITIVE],
    ['extractable', P.CKA_EXTRACTABLE],
    ['encrypt', P.CKA_ENCRYPT],
    ['decrypt', P.CKA_DECRYPT],
    ['sign', P.CKA_SIGN],
    ['verify', P.CKA_VERIFY],
    ['wrap', P.CKA_WRAP],
    ['unwrap', P.CKA_UNWRAP],
    ['derive', P.CKA_DERIVE],
  ];
  // A private key has no CKA_ENCRYPT/VERIFY/WRAP: a template for private keys must not name them.
  const privateOnly = new Set<keyof UnwrapTemplate>(['encrypt', 'verify', 'wrap']);
  for (const [name, type] of flags) {
    if (t.class === 'private' && privateOnly.has(name)) continue;
    const v = t[name];
    if (typeof v === 'boolean') raw.push({ type, value: bool(v) });
  }
  if (t.allowedMechanisms) raw.push({ type: P.CKA_ALLOWED_MECHANISMS, value: allowedMechanisms(t.allowedMechanisms, kwpMechanism) });
  return attributeArray(`${kwpMechanism}:${JSON.stringify(t)}`, raw);
}

/**
 * Attributes of a secret key (forPrivateKey: of a private key, which has no
 * encrypt/verify/wrap). `kwpMechanism` is needed only when the policy names
 * mechanisms or an unwrap template.
 */
export function policyAttributes(policy: KeyPolicy, forPrivateKey = false, kwpMechanism = 0x210a): pkcs11js.Template {
  const all: pkcs11js.Template = [
    { type: P.CKA_TOKEN, value: policy.token },
    { type: P.CKA_PRIVATE, value: policy.private ?? true },
    { type: P.CKA_SENSITIVE, value: policy.sensitive ?? true },
    { type: P.CKA_EXTRACTABLE, value: policy.extractable ?? false },
    { type: P.CKA_ENCRYPT, value: policy.encrypt ?? false },
    { type: P.CKA_DECRYPT, value: policy.decrypt ?? false },
    { type: P.CKA_SIGN, value: policy.sign ?? false },
    { type: P.CKA_VERIFY, value: policy.verify ?? false },
    { type: P.CKA_WRAP, value: policy.wrap ?? false },
    { type: P.CKA_UNWRAP, value: policy.unwrap ?? false },
    { type: P.CKA_DERIVE, value: policy.derive ?? false },
  ];
  const privateOnly = new Set([P.CKA_ENCRYPT, P.CKA_VERIFY, P.CKA_WRAP]);
  const t = forPrivateKey ? all.filter((a) => !privateOnly.has(a.type)) : all;
  if (policy.label !== undefined) t.push({ type: P.CKA_LABEL, value: policy.label });
  if (policy.id !== undefined) t.push({ type: P.CKA_ID, value: policy.id });
  // Only when asked: SoftHSM2 refuses these three in unwrap templates (CKR_ATTRIBUTE_READ_ONLY).
  if (policy.modifiable !== undefined) t.push({ type: P.CKA_MODIFIABLE, value: policy.modifiable });
  if (policy.copyable !== undefined) t.push({ type: P.CKA_COPYABLE, value: policy.copyable });
  if (policy.destroyable !== undefined) t.push({ type: P.CKA_DESTROYABLE, value: policy.destroyable });
  if (policy.allowedMechanisms) t.push({ type: P.CKA_ALLOWED_MECHANISMS, value: allowedMechanisms(policy.allowedMechanisms, kwpMechanism) });
  if (policy.unwrapTemplate) t.push({ type: P.CKA_UNWRAP_TEMPLATE, value: unwrapTemplateValue(policy.unwrapTemplate, kwpMechanism) });
  return t;
}

export function aesUnwrapTemplate(policy: KeyPolicy, kwpMechanism = 0x210a): pkcs11js.Template {
  // No CKA_VALUE_LEN / CKA_CHECK_VALUE: tokens reject them in unwrap templates.
  return [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, ...policyAttributes(policy, false, kwpMechanism)];
}

const KEY_TYPE_CODE: Record<WrappedKeyType, number> = {
  aes: P.CKK_AES,
  des2: P.CKK_DES2,
  des3: P.CKK_DES3,
  generic: P.CKK_GENERIC_SECRET,
  rsa: P.CKK_RSA,
  ec: P.CKK_EC,
};

export const isPrivateKeyType = (t: WrappedKeyType): t is 'rsa' | 'ec' => t === 'rsa' || t === 'ec';

/**
 * The template to unwrap a blob as `keyType`: a secret key, or for rsa/ec a
 * private key (the token parses the PKCS#8 inside), with the policy's
 * attributes. AES keeps its own function: the hot path of translateKwp.
 */
export function unwrapTemplateFor(keyType: WrappedKeyType, policy: KeyPolicy, kwpMechanism = 0x210a): pkcs11js.Template {
  if (keyType === 'aes') return aesUnwrapTemplate(policy, kwpMechanism);
  const priv = isPrivateKeyType(keyType);
  return [{ type: P.CKA_CLASS, value: priv ? P.CKO_PRIVATE_KEY : P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: KEY_TYPE_CODE[keyType] }, ...policyAttributes(policy, priv, kwpMechanism)];
}

/** Secret lengths each type may have, in bytes (TDES with its parity bits). */
const SECRET_LENGTHS: Record<'aes' | 'des2' | 'des3' | 'generic', number[]> = { aes: [16, 24, 32], des2: [16], des3: [24], generic: [32, 48, 64] };
/** PKCS#8 of an RSA-4096 key is ~2.4 KiB; anything near the wrap buffer is not a key of ours. */
const PRIVATE_BLOB_MAX = 4096;

/**
 * An RFC 5649 blob must be the key padded to 8 bytes plus 8: checked here
 * because SoftHSM accepts any payload length as an AES key. A private key's
 * PKCS#8 carries its own length (its DER), so its blob is only bounded.
 */
export function checkKwpBlob(blob: Uint8Array, keyLengthBytes: number, keyType: WrappedKeyType = 'aes'): void {
  if (isPrivateKeyType(keyType)) {
    if (blob.length < 24 || blob.length > PRIVATE_BLOB_MAX || blob.length % 8 !== 0) {
      throw new KeyhubError('KEY_LENGTH_INVALID', `wrapped blob of ${blob.length} bytes cannot hold a PKCS#8 private key`);
    }
    return;
  }
  if (!SECRET_LENGTHS[keyType].includes(keyLengthBytes) || blob.length !== Math.ceil(keyLengthBytes / 8) * 8 + 8) {
    throw new KeyhubError('KEY_LENGTH_INVALID', `wrapped blob of ${blob.length} bytes cannot hold a ${keyType} key of ${keyLengthBytes} bytes`);
  }
}
