import { z } from 'zod';
import { LIMITS } from '../limits';
import { LISTENER_ID_PATTERN } from '../subjects';

/*
 * Wire schemas. Every object is strict (unknown fields are rejected) and every
 * string and array is bounded, so a message that parses is one we understand
 * completely.
 */

export const MESSAGE_TYPES = {
  enrollmentRequest: 'keyhub.v1.enrollment_request',
  rootKek: 'keyhub.v1.root_kek',
  rootKekConfirm: 'keyhub.v1.root_kek_confirm',
  rootKekRotation: 'keyhub.v1.root_kek_rotation',
  rootKekCeremony: 'keyhub.v1.root_kek_ceremony',
  keyPackage: 'keyhub.v1.key_package',
  receipt: 'keyhub.v1.receipt',
  heartbeat: 'keyhub.v1.heartbeat',
  keyCommand: 'keyhub.v1.key_command',
  commandReceipt: 'keyhub.v1.command_receipt',
  inventory: 'keyhub.v1.inventory',
  targetKekRequest: 'keyhub.v1.target_kek_request',
  targetKek: 'keyhub.v1.target_kek',
  targetKekConfirm: 'keyhub.v1.target_kek_confirm',
  targetKekRotation: 'keyhub.v1.target_kek_rotation',
  targetUpdate: 'keyhub.v1.target_update',
} as const;

export const uuid = z.uuid();
export const timestamp = z.iso.datetime({ offset: false });
export const listenerId = z.string().regex(LISTENER_ID_PATTERN);
export const name = z
  .string()
  .min(1)
  .max(LIMITS.maxNameChars)
  .regex(/^[A-Za-z0-9._:/-]+$/);
export const kcv = z.string().regex(/^[0-9a-f]{6}$/);
export const base64 = (max: number) => z.base64().min(4).max(max);
export const positiveInt = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** NUL, or a UTF-16 surrogate without its partner: text PostgreSQL cannot store (text, jsonb) and no honest sender writes. */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Free text in a message (a detail, a hostname): bounded, and storable as it
 * is, so that a signed message the hub takes never fails later in the
 * database (found by test/src/fuzz: such text ended as INTERNAL).
 */
export const freeText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !UNSTORABLE.test(s), 'NUL or unpaired surrogate');

/** A string made to fit `freeText(max)`: cut to `max`, NULs and unpaired surrogates (also one left by the cut) replaced. */
export function storableText(s: string, max: number): string {
  return s.slice(0, max).replace(new RegExp(UNSTORABLE.source, 'g'), '\uFFFD');
}

/** Every key type Keyhub makes and distributes; what each is and may do is in key-algorithms.ts. */
export const KEY_ALGORITHMS = [
  'AES-128',
  'AES-192',
  'AES-256',
  'TDES-2KEY',
  'TDES-3KEY',
  'HMAC-SHA256',
  'HMAC-SHA384',
  'HMAC-SHA512',
  'GENERIC-256',
  'GENERIC-384',
  'GENERIC-512',
  'RSA-2048',
  'RSA-3072',
  'RSA-4096',
  'EC-P256',
  'EC-P384',
  'EC-P521',
] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];
/**
 * A package's `length`: the secret's true length in bytes (TDES with its
 * parity bits: 16 or 24), or for a key pair its size (RSA modulus, EC field)
 * in bytes; a private key's PKCS#8 length follows from its DER.
 */
export const KEY_LENGTH_BYTES: Record<KeyAlgorithm, number> = {
  'AES-128': 16,
  'AES-192': 24,
  'AES-256': 32,
  'TDES-2KEY': 16,
  'TDES-3KEY': 24,
  'HMAC-SHA256': 32,
  'HMAC-SHA384': 48,
  'HMAC-SHA512': 64,
  'GENERIC-256': 32,
  'GENERIC-384': 48,
  'GENERIC-512': 64,
  'RSA-2048': 256,
  'RSA-3072': 384,
  'RSA-4096': 512,
  'EC-P256': 32,
  'EC-P384': 48,
  'EC-P521': 66,
};

/** Usages a key may be granted at its target (PKCS#11 CKA_* capability names, lower case). */
export const KEY_USAGES = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

export const OAEP_HASHES = ['sha1', 'sha256'] as const;
export type OaepHash = (typeof OAEP_HASHES)[number];

/** A KEK sent to a listener wrapped with RSA-OAEP to a transport key it made (root KEK at enrollment, per-target KEK). */
export const oaepWrappedKek = z.strictObject({
  id: uuid,
  version: positiveInt,
  kcv,
  mechanism: z.literal('RSA-OAEP'),
  oaepHash: z.enum(OAEP_HASHES),
  blob: base64(LIMITS.maxBlobChars),
});

/** `tr31`: TR-31 key blocks for a payment HSM (issue 12); a key reaches it only when its policy names it, like every kind. */
export const TARGET_KINDS = ['pkcs11', 'keystore', 'aws-kms', 'azure-kv', 'gcp-kms', 'tr31'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];
/** What a key may reach unless its policy says more: an HSM-only key never reaches a keystore, a cloud or a key block. */
export const DEFAULT_TARGET_KINDS: readonly TargetKind[] = ['pkcs11'];
