import { createCipheriv, createHmac, createPrivateKey, createPublicKey } from 'node:crypto';
import { KEY_ALGORITHM_INFO, type KeyAlgorithm } from '@keyhub/protocol';
import { cmacSubkey, KeyhubError, kcvHex, spkiKcv } from '@keyhub/shared';

const ZERO_16 = Buffer.alloc(16);

function ecb(cipher: string, key: Buffer, block: Buffer): Buffer {
  const c = createCipheriv(cipher, key, null).setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}

/**
 * The KCV of clear material, by the method key-algorithms.ts names for its
 * algorithm, computed over exactly the bytes about to be wrapped for a
 * cloud (a cloud cannot compute our KCV, so the receipt carries this one).
 * Intermediate values are zeroed; the result reveals nothing of the key.
 */
export function materialKcv(algorithm: KeyAlgorithm, material: Buffer): string {
  const info = KEY_ALGORITHM_INFO[algorithm];
  if (info.keyClass === 'secret' && material.length !== info.lengthBytes) {
    throw new KeyhubError('KEY_LENGTH_INVALID', 'material length does not match the algorithm', { details: { algorithm, lengthBytes: material.length } });
  }
  switch (info.kcv) {
    case 'aes-cmac': {
      // CMAC of one full zero block = E_K(0 xor K1), K1 = dbl(E_K(0)).
      const cipher = `aes-${material.length * 8}-ecb`;
      const l = ecb(cipher, material, ZERO_16);
      const k1 = cmacSubkey(l);
      const mac = ecb(cipher, material, k1);
      l.fill(0);
      k1.fill(0);
      return kcvHex(mac);
    }
    case 'tdes-ecb':
      return kcvHex(ecb(material.length === 16 ? 'des-ede-ecb' : 'des-ede3-ecb', material, Buffer.alloc(8)));
    case 'hmac-sha256':
      return kcvHex(createHmac('sha256', material).update(ZERO_16).digest());
    case 'spki-sha256':
      return spkiKcv(createPublicKey(createPrivateKey({ key: material, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }));
  }
}
