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
  keyPackage: 'keyhub.v1.key_package',
  receipt: 'keyhub.v1.receipt',
  heartbeat: 'keyhub.v1.heartbeat',
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

export const KEY_ALGORITHMS = ['AES-128', 'AES-192', 'AES-256'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];
export const KEY_LENGTH_BYTES: Record<KeyAlgorithm, number> = { 'AES-128': 16, 'AES-192': 24, 'AES-256': 32 };

/** Usages a key may be granted at its target (PKCS#11 CKA_* capability names, lower case). */
export const KEY_USAGES = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

export const OAEP_HASHES = ['sha1', 'sha256'] as const;
export type OaepHash = (typeof OAEP_HASHES)[number];

export const TARGET_KINDS = ['pkcs11', 'keystore', 'aws-kms', 'azure-kv', 'gcp-kms'] as const;
