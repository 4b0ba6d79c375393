import { KeyhubError, type Hsm, type KeyHandle, type KeyPolicy } from '@keyhub/shared';
import { oaepCapacity, type ByokWrapAlgorithm } from './algorithms';
import { rsaWrappingKey } from './software-wrap';

/**
 * The ephemeral AES-256 key of CKM_RSA_AES_KEY_WRAP: a session object that
 * can only wrap with AES-KWP, and is extractable only so that RSA-OAEP can
 * wrap it for the cloud. SoftHSM2 cannot bind it further: CKA_WRAP_WITH_TRUSTED
 * would need the cloud's public key marked CKA_TRUSTED, which only the
 * security officer may set, and the listener never logs in as SO.
 */
const EPHEMERAL_POLICY: KeyPolicy = {
  token: false,
  private: true,
  sensitive: true,
  extractable: true,
  encrypt: false,
  decrypt: false,
  sign: false,
  verify: false,
  wrap: true,
  unwrap: false,
  derive: false,
  allowedMechanisms: ['kwp'],
};

export interface HsmWrapOptions {
  /** OAEP hashes this token does; SoftHSM2 2.6 does SHA-1 only (FIELD-NOTES). */
  oaepHashes: ReadonlyArray<ByokWrapAlgorithm['hash']>;
  /**
   * SoftHSM2 zero-pads a key to a multiple of 8 before KWP, so a shorter key
   * would reach the cloud with trailing zeros: refuse those lengths.
   */
  kwpPadsToBlock: boolean;
}

export const SOFTHSM2_WRAP_OPTIONS: HsmWrapOptions = { oaepHashes: ['sha1'], kwpPadsToBlock: true };

/**
 * The BYOK wrap inside the listener's HSM, in two steps (no token here has
 * CKM_RSA_AES_KEY_WRAP): the cloud's wrapping key is imported as a wrap-only
 * session object, an ephemeral AES key is generated in the token, wrapped
 * with RSA-OAEP, and wraps the material with AES-KWP. The material never
 * leaves the token in clear; both session objects are destroyed before this
 * returns, also on failure.
 */
export async function wrapInHsm(hsm: Hsm, spki: Buffer, material: KeyHandle, lengthBytes: number, alg: ByokWrapAlgorithm, opts: HsmWrapOptions): Promise<Buffer> {
  if (!opts.oaepHashes.includes(alg.hash)) {
    throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', `this HSM has no RSA-OAEP with ${alg.hash}`, { details: { hash: alg.hash } });
  }
  const { modulusBytes } = rsaWrappingKey(spki);
  if (alg.construction === 'rsa-oaep' && lengthBytes > oaepCapacity(modulusBytes, alg.hash)) {
    throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'the material is too long for direct RSA-OAEP under this wrapping key', { details: { materialBytes: lengthBytes } });
  }
  if (opts.kwpPadsToBlock && lengthBytes % 8 !== 0) {
    throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'this HSM pads keys to a multiple of 8 bytes before wrapping them', { details: { materialBytes: lengthBytes } });
  }
  const live: KeyHandle[] = [];
  try {
    const pub = await hsm.importRsaWrappingKey(spki);
    live.push(pub);
    if (alg.construction === 'rsa-oaep') return await hsm.wrapRsaOaep(pub, material, alg.hash);
    const ephemeral = await hsm.generateAesKey(32, EPHEMERAL_POLICY);
    live.push(ephemeral);
    const head = await hsm.wrapRsaOaep(pub, ephemeral, alg.hash);
    return Buffer.concat([head, await hsm.wrapKwp(ephemeral, material)]);
  } finally {
    for (const h of live.reverse()) await hsm.destroy(h).catch(() => undefined);
  }
}
