import { constants, createPublicKey, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { KeyhubError } from '@keyhub/shared';
import { oaepCapacity, type ByokWrapAlgorithm } from './algorithms';
import { kwpWrap } from './kwp';
import { ScratchBuffers } from './scratch';

/** The cloud's wrapping key (DER SPKI) as an RSA public key, with its modulus length in bytes. */
export function rsaWrappingKey(spki: Buffer): { key: KeyObject; modulusBytes: number } {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (cause) {
    throw new KeyhubError('CLOUD_IMPORT_TOKEN_INVALID', 'the wrapping key from the cloud is not a DER SubjectPublicKeyInfo', { cause });
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType !== 'rsa' || bits === undefined || bits < 2048) {
    throw new KeyhubError('CLOUD_IMPORT_TOKEN_INVALID', 'the wrapping key from the cloud is not an RSA key of at least 2048 bits');
  }
  return { key, modulusBytes: bits / 8 };
}

function oaep(key: KeyObject, hash: ByokWrapAlgorithm['hash'], data: Buffer): Buffer {
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);
}

/**
 * The BYOK wrap in memory (node:crypto), for what the listener's HSM cannot
 * do (RSA-OAEP with SHA-256 on SoftHSM2). The ephemeral AES key is
 * registered in `scratch` and zeroed before this returns, also on failure;
 * the caller registers `material` there too if it wants it wiped.
 */
export function wrapInMemory(spki: Buffer, material: Buffer, alg: ByokWrapAlgorithm, scratch: ScratchBuffers = new ScratchBuffers()): Buffer {
  const { key, modulusBytes } = rsaWrappingKey(spki);
  try {
    if (alg.construction === 'rsa-oaep') {
      if (material.length > oaepCapacity(modulusBytes, alg.hash)) {
        throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'the material is too long for direct RSA-OAEP under this wrapping key', {
          details: { materialBytes: material.length, capacity: oaepCapacity(modulusBytes, alg.hash) },
        });
      }
      return oaep(key, alg.hash, material);
    }
    const ephemeral = scratch.hold(randomBytes(32));
    return Buffer.concat([oaep(key, alg.hash, ephemeral), kwpWrap(ephemeral, material)]);
  } finally {
    scratch.wipe();
  }
}
