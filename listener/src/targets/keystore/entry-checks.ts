import { KeyhubError } from '@keyhub/shared';
import type { KeystoreEntryInput } from './keystore-types';

/** Key lengths Java accepts for each algorithm; HMAC floors follow the hash size (as the HSM side does). */
const SECRET_LENGTHS: Record<string, readonly number[] | { min: number }> = {
  AES: [16, 24, 32],
  DESede: [24],
  HmacSHA1: { min: 20 },
  HmacSHA256: { min: 32 },
  HmacSHA384: { min: 48 },
  HmacSHA512: { min: 64 },
};

/** Refuses what Java could not load back, before anything is protected or written. */
export function checkEntryInput(entry: KeystoreEntryInput): void {
  if (entry.kind === 'secretKey') {
    const rule = SECRET_LENGTHS[entry.algorithm];
    const ok = rule !== undefined && (Array.isArray(rule) ? rule.includes(entry.key.length) : entry.key.length >= (rule as { min: number }).min && entry.key.length <= 1024);
    if (!ok) throw new KeyhubError('KEY_LENGTH_INVALID', `key length does not fit ${entry.algorithm}`, { details: { algorithm: entry.algorithm, length: entry.key.length } });
    return;
  }
  if (entry.pkcs8.length === 0 || entry.pkcs8[0] !== 0x30) throw new KeyhubError('INPUT_INVALID', 'private key is not a PKCS#8 DER sequence', { details: { alias: entry.alias } });
  if (entry.chain.length === 0) throw new KeyhubError('INPUT_INVALID', 'a private key entry needs its certificate chain', { details: { alias: entry.alias } });
}
