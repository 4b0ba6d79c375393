import { verify } from 'node:crypto';
import { KEY_ALGORITHM_INFO } from '@keyhub/protocol';
import { KeyhubError, TRANSIENT_PRIVATE_KEY_POLICY, type KeyHandle, type KeyPolicy, type PairKeyType, type UnwrapTemplate } from '@keyhub/shared';
import { distributableAlgorithm } from '../domain/key-spec';
import type { CertifiableVersion } from '../store/queries/key-certificates';
import { HMK_PRIVATE_LABEL, type HubKeyring } from './hub-keyring';
import { keyVersionMacData } from './row-mac';

/**
 * How the signing copy of a private key version comes out of the transient
 * KEK: a session object that may sign and nothing else, sensitive, never
 * extractable. Only the attributes a private key template carries are named
 * (policyAttributes leaves encrypt, verify and wrap out for private keys),
 * each fixed by the transient KEK's unwrap template.
 */
const SIGNING_COPY: KeyPolicy = { token: false, private: false, sensitive: true, extractable: false, decrypt: false, sign: true, unwrap: false, derive: false };
const SIGNING_COPY_TEMPLATE: UnwrapTemplate = { class: 'private', token: false, private: false, sensitive: true, extractable: false, decrypt: false, sign: true, unwrap: false, derive: false };
/** The transient KEK: wrap and unwrap, AES-KWP only, never extractable, and what it unwraps is fixed to the signing copy above. */
const TRANSIENT_SIGNING_KEK: KeyPolicy = {
  token: false,
  private: false,
  sensitive: true,
  extractable: false,
  wrap: true,
  unwrap: true,
  allowedMechanisms: ['kwp'],
  unwrapTemplate: SIGNING_COPY_TEMPLATE,
};

export interface VersionSignature {
  keyType: PairKeyType;
  /** RSA: PKCS#1 v1.5 over SHA-256; EC: ECDSA over SHA-256, raw r||s. */
  signature: Buffer;
}

/**
 * Signs `data` with a key pair version's private key, in the hub HSM, for a
 * PKCS#10 request. The private key store (`keyhub-hmk-private`) lets a
 * version out only as a no-usage, AES-KWP-only session object (its unwrap
 * template, fixed for good), which cannot sign, and CKA_ALLOWED_MECHANISMS
 * cannot be changed afterwards. The narrowest way that keeps the key in the
 * token: the row MAC is checked in the HSM first (ROW_MAC_INVALID, nothing
 * unwrapped); the version is unwrapped as the store allows; a transient AES
 * session KEK, whose own unwrap template yields only a sign-only,
 * non-extractable session private key, re-wraps it and unwraps that signing
 * copy; one signature; all three objects are destroyed before this returns.
 * The signature is verified against the version's public key before use.
 *
 * What this shows about the token (a documented limit, not a new one): the
 * store's template fixes what comes out of the store, not what an
 * extractable object becomes afterwards; any session holding the PIN could
 * do the same re-wrap. Versions must stay extractable to be delivered.
 */
export async function signWithKeyVersion(keyring: HubKeyring, row: CertifiableVersion, data: Buffer): Promise<VersionSignature> {
  const { key, version } = row;
  const keyType = KEY_ALGORITHM_INFO[distributableAlgorithm(key.algorithm)].keyType;
  if ((keyType !== 'rsa' && keyType !== 'ec') || version.publicKey === null) throw new KeyhubError('KEY_NOT_A_PAIR', `key ${key.name} is not a key pair`);
  if (!version.mac || !(await keyring.verifyRow(keyVersionMacData({ key, version }), version.mac))) {
    throw new KeyhubError('ROW_MAC_INVALID', `key version ${version.id} of ${key.name} does not match its row MAC: not unwrapped`, { details: { row: 'key_versions', id: version.id } });
  }
  const hsm = keyring.hsm;
  const store = (await hsm.findKeys({ class: 'secret', label: HMK_PRIVATE_LABEL, token: true }))[0];
  if (!store) throw new KeyhubError('NOT_INITIALIZED', `token "${hsm.tokenLabel}" lacks ${HMK_PRIVATE_LABEL}: run \`keyhub-server init\``);
  const handles: KeyHandle[] = [];
  try {
    const stored = await hsm.unwrapKwpAs(store, version.wrapped, keyType, version.length, TRANSIENT_PRIVATE_KEY_POLICY);
    handles.push(stored);
    const kek = await hsm.generateAesKey(32, TRANSIENT_SIGNING_KEK);
    handles.push(kek);
    const rewrapped = await hsm.wrapKwp(kek, stored);
    const signing = await hsm.unwrapKwpAs(kek, rewrapped, keyType, version.length, SIGNING_COPY);
    handles.push(signing);
    const signature = await hsm.signWithPrivateKey(signing, keyType, data);
    if (!verifies(keyType, version.publicKey, data, signature))
      throw new KeyhubError('INTERNAL', `the private key of ${key.name} version ${version.version} did not produce a signature its public key verifies`);
    return { keyType, signature };
  } finally {
    for (const h of handles.reverse()) await hsm.destroy(h).catch(() => undefined);
  }
}

function verifies(keyType: PairKeyType, spki: Buffer, data: Buffer, signature: Buffer): boolean {
  const key = { key: spki, format: 'der' as const, type: 'spki' as const };
  if (keyType === 'rsa') return verify('sha256', data, key, signature);
  // CKM_ECDSA signed the SHA-256 digest: the same as ECDSA-with-SHA-256 over the data.
  return verify('sha256', data, { ...key, dsaEncoding: 'ieee-p1363' }, signature);
}
