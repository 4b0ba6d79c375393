import { createPrivateKey } from 'node:crypto';
import type { JsonWebKey } from '@azure/keyvault-keys';
import { isKeyPair, type KeyAlgorithm } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';

const PRIVATE_MEMBERS = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi', 'x', 'y'] as const;

/**
 * A private key (PKCS#8) as a JWK for a vault that is not HSM-backed (kty RSA, EC).
 * The returned `wipe` zeroes every byte array of the JWK; the SDK's own
 * base64url strings of them cannot be wiped (JavaScript strings), which is
 * part of why this path needs the key's policy to opt in.
 */
export function materialJwk(algorithm: KeyAlgorithm, material: Buffer, keyOps: JsonWebKey['keyOps']): { jwk: JsonWebKey; wipe: () => void } {
  const arrays: Uint8Array[] = [];
  const hold = (b: Buffer): Uint8Array => {
    arrays.push(b);
    return b;
  };
  const wipe = (): void => arrays.forEach((a) => a.fill(0));
  if (!isKeyPair(algorithm)) {
    // Symmetric keys exist only in Managed HSM (oct-HSM), which takes .byok.
    throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'a vault that is not HSM-backed holds only RSA and EC keys', { details: { algorithm } });
  }
  const j = createPrivateKey({ key: material, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
  const jwk: JsonWebKey = { kty: j.kty === 'EC' ? 'EC' : 'RSA', keyOps, ...(j.crv ? { crv: j.crv as JsonWebKey['crv'] } : {}) };
  for (const m of PRIVATE_MEMBERS) {
    const v = j[m];
    if (typeof v === 'string') (jwk as Record<string, unknown>)[m] = hold(Buffer.from(v, 'base64url'));
  }
  return { jwk, wipe };
}
