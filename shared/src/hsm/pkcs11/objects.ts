import { createPublicKey } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { KeyClass, KeyHandle, KeyInfo, KeyQuery, KeyType } from '../hsm';

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
  };
  if (klass === 'secret' || klass === 'private') readFlags(lib, s, handle, klass, info);
  if (klass === 'secret') {
    const [len] = lib.C_GetAttributeValue(s, handle, [{ type: P.CKA_VALUE_LEN }]);
    info.valueLen = readUlong(len.value as Buffer);
  }
  return info;
}

function readFlags(lib: pkcs11js.PKCS11, s: Buffer, handle: KeyHandle, klass: 'secret' | 'private', info: KeyInfo): void {
  // Private keys have no CKA_ENCRYPT/VERIFY/WRAP; asking for them is an error on some tokens.
  const names =
    klass === 'secret' ? (['sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap'] as const) : (['sensitive', 'extractable', 'decrypt', 'sign', 'unwrap'] as const);
  const values = lib.C_GetAttributeValue(
    s,
    handle,
    names.map((n) => ({ type: FLAG_ATTRIBUTES[n] })),
  );
  names.forEach((n, i) => {
    info[n] = bool(values[i].value as Buffer);
  });
}

/** A public key object (EC P-256 or RSA) as SPKI DER. */
export function readPublicKeySpki(lib: pkcs11js.PKCS11, s: Buffer, publicKey: KeyHandle): Buffer {
  const [type] = lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_KEY_TYPE }]);
  const keyType = readUlong(type.value as Buffer);
  if (keyType === P.CKK_EC) {
    const [point] = lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_EC_POINT }]);
    const raw = unwrapDerOctetString(point.value as Buffer);
    if (raw.length !== 65 || raw[0] !== 4) throw new KeyhubError('HSM_ERROR', 'unexpected EC point encoding');
    const jwk = { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') };
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
