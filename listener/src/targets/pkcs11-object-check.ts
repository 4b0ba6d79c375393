/**
 * Is the object already in the token the key a package delivers? A CKA_ID
 * alone says nothing: anyone with the PIN can create an object with that id.
 * So an object is confirmed as already present only if its attributes are
 * exactly what the package's policy gives an import (class, type, length,
 * token, sensitive, never extractable unless exportable, each usage flag)
 * and it is the same key, shown in the token: its KCV where its usages let
 * the token compute one (CMAC with CKA_SIGN; the same CMAC from two AES-ECB
 * encryptions with CKA_ENCRYPT), or, for a decrypt-only key, by decrypting
 * what the package's own key (the session probe) encrypted. A key whose
 * usages allow none of these cannot show it is the same key without being
 * changed: it is reported as a mismatch, never confirmed.
 *
 * Other types: a TDES key shows its KCV with CKA_ENCRYPT (TDES-ECB of a zero
 * block), an HMAC or generic secret with CKA_SIGN (HMAC-SHA256); a private
 * key with CKA_SIGN signs a challenge that the package's public key must
 * verify. Without those usages such keys are reported as a mismatch (the
 * same limit as a verify-only AES key).
 */
import { randomBytes } from 'node:crypto';
import { cmacSubkey, hmacKcv, kcvHex, tdesKcv, type Hsm, type KeyHandle, type KeyInfo } from '@keyhub/shared';
import { algorithmInfo, provesPair } from './pkcs11-key-types';
import type { ImportRequest } from './target';

export interface ObjectCheck {
  ok: boolean;
  /** What differs, for the receipt (no key material). */
  reason?: string;
}

const FLAGS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap'] as const;
/** A private key has no encrypt/verify/wrap (its public key has them); derive is checked for it as well. */
const PRIVATE_FLAGS = ['decrypt', 'sign', 'unwrap', 'derive'] as const;

/** The attributes an import under this package gives the object (pkcs11-target.ts). */
export function attributeMismatch(info: KeyInfo, req: ImportRequest): string | undefined {
  const usages = new Set<string>(req.key.usages);
  const expected = algorithmInfo(req);
  if (info.class !== expected.keyClass || info.keyType !== expected.keyType) return `object is ${info.class}/${info.keyType}, not a ${expected.keyClass}/${expected.keyType} key`;
  // SoftHSM2 reports CKA_VALUE_LEN empty for unwrapped keys (0 here); the KCV below then proves the value.
  if (expected.keyClass === 'secret' && info.valueLen && info.valueLen !== req.key.length) return `object holds ${info.valueLen} bytes, the key ${req.key.length}`;
  if (!info.token) return 'object is not a token object';
  if (!info.sensitive) return 'object is not sensitive';
  if (info.extractable !== req.key.exportable) return `object is ${info.extractable ? '' : 'not '}extractable`;
  for (const f of expected.keyClass === 'private' ? PRIVATE_FLAGS : FLAGS) if (info[f] !== usages.has(f)) return `object has CKA_${f.toUpperCase()} ${info[f]}`;
  return undefined;
}

/** The object's AES KCV, computed in the token when its usages allow it. */
async function objectKcv(hsm: Hsm, h: KeyHandle, info: KeyInfo): Promise<string | undefined> {
  if (info.sign) return kcvHex(await hsm.aesCmac(h, Buffer.alloc(16)));
  if (info.encrypt) {
    // CMAC of one zero block is E(K, K1) with K1 = dbl(E(K, 0)) (shared/src/kcv.ts).
    const l = await hsm.aesEcb(h, Buffer.alloc(16), 'encrypt');
    return kcvHex(await hsm.aesEcb(h, cmacSubkey(l), 'encrypt'));
  }
  return undefined;
}

/**
 * `probe` is the package's key as a session object that may encrypt (and
 * sign); its KCV was already checked against the package.
 */
export async function checkExistingObject(hsm: Hsm, h: KeyHandle, req: ImportRequest, probe: KeyHandle): Promise<ObjectCheck> {
  const info = await hsm.keyInfo(h);
  const attrs = attributeMismatch(info, req);
  if (attrs) return { ok: false, reason: attrs };
  const method = algorithmInfo(req).kcv;
  if (method !== 'aes-cmac') return checkOtherType(hsm, h, info, req, method);
  const kcv = await objectKcv(hsm, h, info);
  if (kcv !== undefined) return kcv === req.key.kcv ? { ok: true } : { ok: false, reason: `object KCV ${kcv} differs from the package's ${req.key.kcv}` };
  if (info.decrypt) {
    const challenge = randomBytes(16);
    const back = await hsm.aesEcb(h, await hsm.aesEcb(probe, challenge, 'encrypt'), 'decrypt');
    return back.equals(challenge) ? { ok: true } : { ok: false, reason: 'object decrypts differently from the package key' };
  }
  return { ok: false, reason: 'object usages let the token show no KCV: cannot confirm it is the same key' };
}

const cannotShow = (what: string): ObjectCheck => ({ ok: false, reason: `object usages let the token show no ${what}: cannot confirm it is the same key` });

/** TDES, HMAC/generic and private keys: the object's own KCV or proof, where its usages let the token compute it. */
async function checkOtherType(hsm: Hsm, h: KeyHandle, info: KeyInfo, req: ImportRequest, method: 'tdes-ecb' | 'hmac-sha256' | 'spki-sha256'): Promise<ObjectCheck> {
  if (method === 'spki-sha256') {
    if (!info.sign) return cannotShow('signature');
    return (await provesPair(hsm, h, req)) ? { ok: true } : { ok: false, reason: "object does not sign for the package's public key" };
  }
  const usable = method === 'tdes-ecb' ? info.encrypt : info.sign;
  if (!usable) return cannotShow('KCV');
  const kcv = method === 'tdes-ecb' ? await tdesKcv(hsm, h) : await hmacKcv(hsm, h);
  return kcv === req.key.kcv ? { ok: true } : { ok: false, reason: `object KCV ${kcv} differs from the package's ${req.key.kcv}` };
}
