import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { api } from '@keyhub/protocol';

/** A fresh token: 128-bit public id, 256-bit secret from the OS CSPRNG. Only `secretHash` is ever stored. */
export function mintApiToken(id = randomBytes(16).toString('hex')): { id: string; token: string; secretHash: Buffer } {
  const secret = randomBytes(32).toString('base64url');
  return { id, token: api.formatApiToken(id, secret), secretHash: hashTokenSecret(secret) };
}

export function newTokenId(): string {
  return randomBytes(16).toString('hex');
}

export function hashTokenSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Constant time in the secret: comparing digests of equal length never stops at the first differing byte. */
export function tokenSecretMatches(secret: string, storedHash: Buffer | null): boolean {
  const given = hashTokenSecret(secret);
  // Compared even when there is nothing stored, so that a missing row or secret costs the same time.
  const stored = storedHash && storedHash.length === given.length ? storedHash : Buffer.alloc(given.length);
  return timingSafeEqual(given, stored) && storedHash !== null && storedHash.length === given.length;
}
