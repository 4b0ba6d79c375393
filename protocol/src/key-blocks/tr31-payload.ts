import { randomBytes } from 'node:crypto';
import { malformed, Tr31Error } from './tr31-error';
import type { Tr31Algorithm } from './tr31-fields';
import type { Tr31Secrets } from './tr31-secrets';

/** Key lengths in bytes each header algorithm allows; asymmetric keys travel as DER of any length. */
const KEY_LENGTHS: Partial<Record<Tr31Algorithm, readonly number[]>> = { A: [16, 24, 32], T: [16, 24], D: [8] };
/** The key length field holds bits in two bytes. */
const MAX_KEY_BYTES = 0xffff >> 3;

export function keyLengthFits(algorithm: Tr31Algorithm, length: number): boolean {
  const allowed = KEY_LENGTHS[algorithm];
  return allowed ? allowed.includes(length) : length > 0 && length <= MAX_KEY_BYTES;
}

export interface PayloadOptions {
  /** Pad as if the key were this many bytes long, so that the block does not reveal the key's length (X9.143 key length masking). */
  maskedKeyLength?: number;
  /** The padding bytes, for known-answer tests only; must be exactly as long as the payload needs. Random otherwise. */
  padding?: Buffer;
}

/**
 * The clear key data: key length in bits (two bytes, big-endian), the key,
 * and padding to a whole number of cipher blocks. Held for wiping.
 */
export function buildPayload(key: Buffer, algorithm: Tr31Algorithm, blockSize: number, options: PayloadOptions, secrets: Tr31Secrets): Buffer {
  if (!Buffer.isBuffer(key) || !keyLengthFits(algorithm, key.length))
    throw new Tr31Error('KEY_LENGTH_INVALID', `a key of ${Buffer.isBuffer(key) ? key.length : 0} bytes does not fit algorithm ${algorithm}`);
  const masked = options.maskedKeyLength ?? 0;
  if (!Number.isSafeInteger(masked) || masked < 0 || masked > MAX_KEY_BYTES) throw new Tr31Error('INPUT_INVALID', 'masked key length must be a byte count');
  const length = Math.ceil((2 + Math.max(key.length, masked)) / blockSize) * blockSize;
  const padLength = length - 2 - key.length;
  if (options.padding !== undefined && (!Buffer.isBuffer(options.padding) || options.padding.length !== padLength)) {
    throw new Tr31Error('INPUT_INVALID', `padding must be exactly ${padLength} bytes for this key and block size`);
  }
  const payload = secrets.alloc(length);
  payload.writeUInt16BE(key.length * 8, 0);
  key.copy(payload, 2);
  (options.padding ?? secrets.hold(randomBytes(padLength))).copy(payload, 2 + key.length);
  return payload;
}

/** The key out of decrypted key data, in a fresh buffer the caller owns and wipes. Only called once the MAC has verified. */
export function keyFromPayload(payload: Buffer, algorithm: Tr31Algorithm): Buffer {
  const bits = payload.readUInt16BE(0);
  const length = bits >> 3;
  if (bits % 8 !== 0 || length > payload.length - 2) throw malformed('decrypted key length field does not fit the key data');
  if (!keyLengthFits(algorithm, length)) throw malformed(`decrypted key of ${length} bytes does not fit algorithm ${algorithm}`);
  // Buffer.alloc, not Buffer.from: the key gets a memory of its own, not a slice of Node's shared pool.
  const key = Buffer.alloc(length);
  payload.copy(key, 0, 2, 2 + length);
  return key;
}
