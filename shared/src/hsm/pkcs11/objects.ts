import { createPublicKey } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { EcCurveName, KeyClass, KeyHandle, KeyInfo, KeyPolicy, KeyQuery, KeyType } from '../hsm';
import { EC_PARAMS, publicKeyAttributes } from './key-generation';

const P = pkcs11js;

const FLAG_ATTRIBUTES = {
  sensitive: P.CKA_SENSITIVE,
  extractable: P.CKA_EXTRACTABLE,
  encrypt: P.CKA_ENCRYPT,
  decrypt: P.CKA_DECRYPT,
  sign: P.CKA_SIGN,
  verify: P.CKA_VERIFY,
  wrap: P.CKA_WRAP,
  unwrap: P.CKA_UNWRAP,
  derive: P.CKA_DERIVE,
} as const;

const CLASS_BY_NAME: Record<Exclude<KeyClass, 'other'>, number> = {
  secret: P.CKO_SECRET_KEY,
  private: P.CKO_PRIVATE_KEY,
  public: P.CKO_PUBLIC_KEY,
};

const bool = (buf: Buffer | undefined): boolean => buf !== undefined && buf.length > 0 && buf[0] !== 0;

function readUlong(buf: Buffer): number {
  if (buf.length === 0) return 0;
  return buf.length >= 8 ? Number(buf.readBigUInt64LE(0)) : buf.readUInt32LE(0);
}

function className(value: number): KeyClass {
  if (value === P.CKO_SECRET_KEY) return 'secret';
  if (value === P.CKO_PRIVATE_KEY) return 'private';
  if (value === P.CKO_PUBLIC_KEY) return 'public';
  return 'other';
}

function keyTypeName(value: number): KeyType {
  if (value === P.CKK_AES) return 'aes';
  if (value === P.CKK_EC) return 'ec';
  if (value === P.CKK_RSA) return 'rsa';
  if (value === P.CKK_GENERIC_SECRET) return 'generic';
  if (value === P.CKK_DES3) return 'des3';
  if (value === P.CKK_DES2) return 'des2';
  return 'other';
}

/** Every object matching the query (C_FindObjects in batches of 256). */
export function findObjects(lib: pkcs11js.PKCS11, s: Buffer, query: KeyQuery): KeyHandle[] {
  const template: pkcs11js.Template = [];
  if (query.class && query.class !== 'other') template.push({ type: P.CKA_CLASS, value: CLASS_BY_NAME[query.class] });
  if (query.label !== undefined) template.push({ type: P.CKA_LABEL, value: query.label });
  if (query.id !== undefined) template.push({ type: P.CKA_ID, value: query.id });
  if (query.token !== undefined) template.push({ type: P.CKA_TOKEN, value: query.token });
  lib.C_FindObjectsInit(s, template);
  try {
    const found: Buffer[] = [];
    for (;;) {
      const batch = lib.C_FindObjects(s, 256);
      if (batch.length === 0) break;
      found.push(...batch);
    }
    return found;
  } finally {
    lib.C_FindObjectsFinal(s);
  }
}

/** An object's class, type, label, id and, for keys, its usage and protection flags. */
export function readKeyInfo(lib: pkcs11js.PKCS11, s: Buffer, handle: KeyHandle): KeyInfo {
  const [cls, type, label, id, token, priv] = lib.C_GetAttributeValue(s, handle, [
    { type: P.CKA_CLASS },
    { type: P.CKA_KEY_TYPE },
    { type: P.CKA_LABEL },
    { type: P.CKA_ID },
    { type: P.CKA_TOKEN },
    { type: P.CKA_PRIVATE },
  ]);
  const klass = className(readUlong(cls.value as Buffer));
  const info: KeyInfo = {
    handle,
    class: klass,
    keyType: keyTypeName(readUlong(type.value as Buffer)),
    label: (label.value as Buffer).toString('utf8'),
    id: Buffer.from(id.value as Buffer),
    token: bool(token.value as Buffer),
    private: bool(priv.value as Buffer),
    sensitive: false,
    extractable: false,
    encrypt: false,
    decrypt: false,
    sign: false,
    verify: false,
    wrap: false,
    unwrap: false,
    derive: false,
  };
  if (klass === 'secret' || klass === 'private') readFlags(lib, s, handle, klass, info);
  if (klass === 'public') readPublicFlags(lib, s, handle, info);
  // TDES keys have no CKA_VALUE_LEN (SoftHSM2: CKR_ATTRIBUTE_TYPE_INVALID): their length is their type's.
  if (klass === 'secret' && (info.keyType === 'des2' || info.keyType === 'des3')) info.valueLen = info.keyType === 'des2' ? 16 : 24;
  else if (klass === 'secret') {
    const [len] = lib.C_GetAttributeValue(s, handle, [{ type: P.CKA_VALUE_LEN }]);
    info.valueLen = readUlong(len.value as Buffer);
  }
  return info;
}

function readFlags(lib: pkcs11js.PKCS11, s: Buffer, handle: KeyHandle, klass: 'secret' | 'private', info: KeyInfo): void {
  // Private keys have no CKA_ENCRYPT/VERIFY/WRAP; asking for them is an error on some tokens.
  const names =
    klass === 'secret'
      ? (['sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'] as const)
      : (['sensitive', 'extractable', 'decrypt', 'sign', 'unwrap', 'derive'] as const);
  const values = lib.C_GetAttributeValue(
    s,
    handle,
    names.map((n) => ({ type: FLAG_ATTRIBUTES[n] })),
  );
  names.forEach((n, i) => {
    info[n] = bool(values[i].value as Buffer);
  });
}

/** A public key's usage flags (a public key has only verify, encrypt, wrap of the usages). */
function readPublicFlags(lib: pkcs11js.PKCS11, s: Buffer, handle: KeyHandle, info: KeyInfo): void {
  const [verify, encrypt, wrap] = lib.C_GetAttributeValue(s, handle, [{ type: P.CKA_VERIFY }, { type: P.CKA_ENCRYPT }, { type: P.CKA_WRAP }]);
  info.verify = bool(verify.value as Buffer);
  info.encrypt = bool(encrypt.value as Buffer);
  info.wrap = bool(wrap.value as Buffer);
}

function curveOf(params: Buffer): EcCurveName {
  for (const [curve, der] of Object.entries(EC_PARAMS) as Array<[EcCurveName, Buffer]>) if (der.equals(params)) return curve;
  throw new KeyhubError('HSM_ERROR', 'EC public key on a curve other than P-256, P-384, P-521');
}

/** A public key object (EC P-256/384/521 or RSA) as SPKI DER. */
export function readPublicKeySpki(lib: pkcs11js.PKCS11, s: Buffer, publicKey: KeyHandle): Buffer {
  const [type] = lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_KEY_TYPE }]);
  const keyType = readUlong(type.value as Buffer);
  if (keyType === P.CKK_EC) {
    const [point, params] = lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_EC_POINT }, { type: P.CKA_EC_PARAMS }]);
    const raw = unwrapDerOctetString(point.value as Buffer);
    const size = (raw.length - 1) / 2;
    if (raw[0] !== 4 || !Number.isInteger(size)) throw new KeyhubError('HSM_ERROR', 'unexpected EC point encoding');
    const jwk = { kty: 'EC', crv: curveOf(params.value as Buffer), x: raw.subarray(1, 1 + size).toString('base64url'), y: raw.subarray(1 + size).toString('base64url') };
    return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' });
  }
  if (keyType === P.CKK_RSA) {
    const [n, e] = lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_MODULUS }, { type: P.CKA_PUBLIC_EXPONENT }]);
    const jwk = { kty: 'RSA', n: stripLeadingZeros(n.value as Buffer).toString('base64url'), e: stripLeadingZeros(e.value as Buffer).toString('base64url') };
    return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' });
  }
  throw new KeyhubError('HSM_ERROR', `public key type ${keyType} is not supported`);
}

function unwrapDerOctetString(der: Buffer): Buffer {
  if (der[0] !== 0x04) return der;
  const len = der[1];
  if (len < 0x80) return der.subarray(2, 2 + len);
  const n = len & 0x7f;
  return der.subarray(2 + n);
}

function stripLeadingZeros(buf: Buffer): Buffer {
  let i = 0;
  while (i < buf.length - 1 && buf[i] === 0) i++;
  return buf.subarray(i);
}

/** DER OCTET STRING around `value` (CKA_EC_POINT holds the point that way). */
function derOctetString(value: Buffer): Buffer {
  const len = value.length;
  const header = len < 0x80 ? Buffer.from([0x04, len]) : len < 0x100 ? Buffer.from([0x04, 0x81, len]) : Buffer.from([0x04, 0x82, len >> 8, len & 0xff]);
  return Buffer.concat([header, value]);
}

/** A public key object from DER SPKI (RSA, or EC on P-256/384/521), with the usages and label/id the policy gives. */
export function createPublicKeyObject(lib: pkcs11js.PKCS11, s: Buffer, spki: Buffer, policy: KeyPolicy): KeyHandle {
  const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  let key: pkcs11js.Template;
  if (jwk.kty === 'RSA' && jwk.n && jwk.e) {
    key = [
      { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
      { type: P.CKA_MODULUS, value: Buffer.from(jwk.n, 'base64url') },
      { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from(jwk.e, 'base64url') },
    ];
  } else if (jwk.kty === 'EC' && jwk.x && jwk.y && (jwk.crv === 'P-256' || jwk.crv === 'P-384' || jwk.crv === 'P-521')) {
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
    key = [
      { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
      { type: P.CKA_EC_PARAMS, value: EC_PARAMS[jwk.crv] },
      { type: P.CKA_EC_POINT, value: derOctetString(point) },
    ];
  } else {
    throw new KeyhubError('MESSAGE_MALFORMED', 'public key is neither RSA nor EC on P-256, P-384, P-521');
  }
  return lib.C_CreateObject(s, [{ type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY }, ...key, ...publicKeyAttributes(policy)]);
}
