import { KEY_ALGORITHM_INFO, type KeyAlgorithm } from '@keyhub/protocol';
import { aesKcv, secretKcv, spkiKcv, type KeyPairSpec, type SecretKeyType } from '@keyhub/shared';
import type { HubKeyring } from './hub-keyring';

/** A key version as it leaves the HSM: its KCV, the blob under its master key and, for a key pair, the public key (DER SPKI). */
export interface GeneratedKeyVersion {
  kcv: string;
  wrapped: Buffer;
  publicKey: Buffer | null;
}

/**
 * Generates one key version of `algorithm` in the hub HSM as session
 * objects, computes its KCV there (shared/src/kcv.ts names each method),
 * wraps it under the master key of its class and destroys the objects.
 * The session objects are extractable only so they can be wrapped; a secret
 * gets the one usage its KCV needs (CKA_SIGN for CMAC/HMAC, CKA_ENCRYPT for
 * TDES-ECB), a private key none: its KCV comes from the public key.
 */
export async function generateKeyVersion(keyring: HubKeyring, algorithm: KeyAlgorithm): Promise<GeneratedKeyVersion> {
  const info = KEY_ALGORITHM_INFO[algorithm];
  const hsm = keyring.hsm;
  if (info.keyClass === 'secret') {
    const type = info.keyType as SecretKeyType;
    // AES keeps the call it always made: bulk creation runs this ~10,000 times a second.
    const handle =
      type === 'aes'
        ? await hsm.generateAesKey(info.lengthBytes, { token: false, extractable: true, sign: true })
        : await hsm.generateSecretKey(type, info.lengthBytes, { token: false, extractable: true, sign: info.kcv === 'hmac-sha256', encrypt: info.kcv === 'tdes-ecb' });
    try {
      const kcv = type === 'aes' ? await aesKcv(hsm, handle) : await secretKcv(hsm, handle, info.kcv as 'tdes-ecb' | 'hmac-sha256');
      return { kcv, wrapped: await keyring.wrapKeyVersion(handle, type), publicKey: null };
    } finally {
      await hsm.destroy(handle);
    }
  }
  const spec: KeyPairSpec = info.keyType === 'rsa' ? { type: 'rsa', bits: info.rsaBits! } : { type: 'ec', curve: info.curve! };
  const pair = await hsm.generateKeyPair(spec, { private: { token: false, extractable: true }, public: { token: false } });
  try {
    const publicKey = await hsm.publicKeySpki(pair.publicKey);
    return { kcv: spkiKcv(publicKey), wrapped: await keyring.wrapKeyVersion(pair.privateKey, spec.type), publicKey };
  } finally {
    await hsm.destroy(pair.privateKey);
    await hsm.destroy(pair.publicKey);
  }
}
