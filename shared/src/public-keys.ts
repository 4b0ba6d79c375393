import { createPublicKey, type KeyObject } from 'node:crypto';
import { KeyhubError } from './errors';

/** Parses a DER SPKI, failing with a stable code rather than an OpenSSL message. */
export function parseSpki(der: Buffer, what: string): KeyObject {
  try {
    return createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch (err) {
    throw new KeyhubError('MESSAGE_MALFORMED', `${what} is not a valid public key`, { cause: err });
  }
}

export function assertEcP256(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new KeyhubError('MESSAGE_MALFORMED', `${what} must be an EC P-256 key`);
  }
}

export function assertRsa(key: KeyObject, minBits: number, what: string): void {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < minBits) throw new KeyhubError('MESSAGE_MALFORMED', `${what} must be RSA of at least ${minBits} bits`);
}
