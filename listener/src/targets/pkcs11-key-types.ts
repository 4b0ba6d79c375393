/**
 * What importing a key means in a PKCS#11 token, per key type (the types
 * and their KCV methods: protocol/src/messages/key-algorithms.ts):
 *
 * - Secret keys (AES, DES2/DES3, generic secrets for HMAC): unwrapped under
 *   the root KEK as CKO_SECRET_KEY of their key type, with the usages of
 *   the package.
 * - Key pairs (RSA, EC): the blob is the private key as PKCS#8 under
 *   AES-KWP; the token unwraps it as CKO_PRIVATE_KEY (sign, decrypt, unwrap,
 *   derive as granted), and a CKO_PUBLIC_KEY object is made from the
 *   package's SubjectPublicKeyInfo (verify, encrypt, wrap as granted), both
 *   under the same CKA_ID and label. Before either exists, a session copy
 *   of the private key signs a fixed challenge in the token, and the
 *   signature must verify under the package's public key: the KCV of a pair
 *   (SHA-256 of the SPKI) is accepted only then (KEY_PAIR_MISMATCH).
 *
 * Imported keys are sensitive, and extractable only when the key is
 * exportable; the root KEK's unwrap template (key-classes.ts) enforces the
 * first and refuses extractable objects altogether.
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { KEY_ALGORITHM_INFO, type KeyAlgorithmInfo } from '@keyhub/protocol';
import { KeyhubError, secretKcv, spkiKcv, type Hsm, type KeyHandle, type KeyPolicy, type SecretKcvMethod, type WrappedKeyType } from '@keyhub/shared';
import type { ImportRequest } from './target';

/** What the target signs to prove a private key matches the package's public key; fixed, nothing secret in it. */
export const PAIR_CHALLENGE = Buffer.from('keyhub.v1.key-pair-check', 'utf8');

export function algorithmInfo(req: ImportRequest): KeyAlgorithmInfo {
  return KEY_ALGORITHM_INFO[req.key.algorithm];
}

export function objectClass(req: ImportRequest): 'secret' | 'private' {
  return algorithmInfo(req).keyClass;
}

/**
 * The session probe: the package's key unwrapped only to check it (KCV,
 * proof of a private key, comparison with an object already there), then
 * destroyed. It gets the one usage each check needs, never extractable.
 */
export function probePolicy(info: KeyAlgorithmInfo): KeyPolicy {
  const base: KeyPolicy = { token: false, sensitive: true, extractable: false };
  if (info.keyClass === 'private') return { ...base, sign: true };
  if (info.kcv === 'tdes-ecb') return { ...base, encrypt: true };
  if (info.kcv === 'hmac-sha256') return { ...base, sign: true };
  return { ...base, sign: true, encrypt: true };
}

export async function unwrapAs(hsm: Hsm, kek: KeyHandle, req: ImportRequest, policy: KeyPolicy): Promise<KeyHandle> {
  const info = algorithmInfo(req);
  return hsm.unwrapKwpAs(kek, req.wrapped.blob, info.keyType as WrappedKeyType, req.key.length, policy);
}

/** The package's public key, checked to be of the algorithm's kind and size (a P-384 key in an EC-P256 package is refused). */
export function packagePublicKey(req: ImportRequest): { spki: Buffer; key: KeyObject } {
  const info = algorithmInfo(req);
  if (!req.key.publicKey) throw new KeyhubError('MESSAGE_MALFORMED', `an ${req.key.algorithm} package carries no public key`);
  const spki = Buffer.from(req.key.publicKey, 'base64');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new KeyhubError('MESSAGE_MALFORMED', 'the package public key is not a DER SubjectPublicKeyInfo', { cause: err });
  }
  const d = key.asymmetricKeyDetails ?? {};
  const curves: Record<string, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };
  const fits = info.keyType === 'rsa' ? key.asymmetricKeyType === 'rsa' && d.modulusLength === info.rsaBits : key.asymmetricKeyType === 'ec' && d.namedCurve === curves[info.curve ?? ''];
  if (!fits) throw new KeyhubError('KEY_LENGTH_INVALID', `the package public key is not an ${req.key.algorithm} key`);
  return { spki, key };
}

/** Does `privateKey` (in the token, CKA_SIGN) sign so that the package's public key verifies it? */
export async function provesPair(hsm: Hsm, privateKey: KeyHandle, req: ImportRequest): Promise<boolean> {
  const info = algorithmInfo(req);
  const { key } = packagePublicKey(req);
  const keyType = info.keyType as 'rsa' | 'ec';
  const sig = await hsm.signWithPrivateKey(privateKey, keyType, PAIR_CHALLENGE);
  return keyType === 'rsa' ? nodeVerify('sha256', PAIR_CHALLENGE, key, sig) : nodeVerify('sha256', PAIR_CHALLENGE, { key, dsaEncoding: 'ieee-p1363' }, sig);
}

/**
 * The KCV of the package's key as the target computes it from the probe.
 * For a key pair: the SPKI's KCV, returned only after the probe proved it
 * holds the matching private key.
 */
export async function targetKcv(hsm: Hsm, probe: KeyHandle, req: ImportRequest): Promise<string> {
  const info = algorithmInfo(req);
  if (info.keyClass === 'secret') return secretKcv(hsm, probe, info.kcv as SecretKcvMethod);
  const { spki } = packagePublicKey(req);
  if (!(await provesPair(hsm, probe, req))) throw new KeyhubError('KEY_PAIR_MISMATCH', `the private key in the package does not sign for its public key (KCV ${spkiKcv(spki)})`);
  return spkiKcv(spki);
}

/** The attributes an import gives the object: label, id, sensitive, extractable as exportable, each usage of its class. */
function importPolicy(req: ImportRequest, id: Buffer, label: string): KeyPolicy {
  const u = new Set<string>(req.key.usages);
  return {
    token: true,
    label,
    id,
    sensitive: true,
    extractable: req.key.exportable,
    encrypt: u.has('encrypt'),
    decrypt: u.has('decrypt'),
    sign: u.has('sign'),
    verify: u.has('verify'),
    wrap: u.has('wrap'),
    unwrap: u.has('unwrap'),
    derive: u.has('derive'),
  };
}

/** Creates the key's token objects: the secret key, or the private key and its public key (none left behind on failure). */
export async function importIntoToken(hsm: Hsm, kek: KeyHandle, req: ImportRequest, id: Buffer, label: string): Promise<void> {
  const policy = importPolicy(req, id, label);
  // For a private key, policyAttributes leaves out encrypt/verify/wrap: those go to the public key.
  const handle = await unwrapAs(hsm, kek, req, policy);
  if (objectClass(req) === 'secret') return;
  try {
    await ensurePublicKey(hsm, req, id, label);
  } catch (err) {
    await hsm.destroy(handle).catch(() => undefined);
    throw err;
  }
}

/** The public key object of a pair: created from the package's SPKI if missing; one that differs from it is a mismatch. */
export async function ensurePublicKey(hsm: Hsm, req: ImportRequest, id: Buffer, label: string): Promise<void> {
  const { spki } = packagePublicKey(req);
  const existing = await hsm.findKeys({ class: 'public', id, token: true });
  for (const h of existing) {
    if (!(await hsm.publicKeySpki(h)).equals(spki)) throw new KeyhubError('TARGET_OBJECT_MISMATCH', `a public key with this key's id in token "${hsm.tokenLabel}" is not the package's`);
  }
  if (existing.length > 0) return;
  const u = new Set<string>(req.key.usages);
  await hsm.createPublicKey(spki, { token: true, label, id, verify: u.has('verify'), encrypt: u.has('encrypt'), wrap: u.has('wrap') });
}
