import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from './errors';
import { LIMITS } from './limits';
import { LISTENER_ID_PATTERN } from './subjects';

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

const uuid = z.uuid();
const timestamp = z.iso.datetime({ offset: false });
const listenerId = z.string().regex(LISTENER_ID_PATTERN);
const name = z.string().min(1).max(LIMITS.maxNameChars).regex(/^[A-Za-z0-9._:/-]+$/);
const kcv = z.string().regex(/^[0-9a-f]{6}$/);
const base64 = (max: number) => z.base64().min(4).max(max);
const positiveInt = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export const KEY_ALGORITHMS = ['AES-128', 'AES-192', 'AES-256'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];
export const KEY_LENGTH_BYTES: Record<KeyAlgorithm, number> = { 'AES-128': 16, 'AES-192': 24, 'AES-256': 32 };

/** Usages a key may be granted at its target (PKCS#11 CKA_* capability names, lower case). */
export const KEY_USAGES = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

export const OAEP_HASHES = ['sha1', 'sha256'] as const;
export type OaepHash = (typeof OAEP_HASHES)[number];

export const TARGET_KINDS = ['pkcs11', 'keystore', 'aws-kms', 'azure-kv', 'gcp-kms'] as const;

const targetRef = z.strictObject({ name, kind: z.enum(TARGET_KINDS) });

export const enrollmentRequestSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.enrollmentRequest),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  identityKey: base64(LIMITS.maxSpkiChars),
  transportKey: base64(LIMITS.maxSpkiChars),
  oaepHash: z.enum(OAEP_HASHES),
  targets: z.array(targetRef).min(1).max(LIMITS.maxTargets),
  hostname: z.string().max(LIMITS.maxNameChars).optional(),
});
export type EnrollmentRequest = z.infer<typeof enrollmentRequestSchema>;

export const rootKekSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.rootKek),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  /** Hub signing public key (DER SPKI); the listener checks it against its pinned fingerprint. */
  hubKey: base64(LIMITS.maxSpkiChars),
  kek: z.strictObject({
    id: uuid,
    version: positiveInt,
    kcv,
    mechanism: z.literal('RSA-OAEP'),
    oaepHash: z.enum(OAEP_HASHES),
    blob: base64(LIMITS.maxBlobChars),
  }),
});
export type RootKekMessage = z.infer<typeof rootKekSchema>;

export const rootKekConfirmSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.rootKekConfirm),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  kekId: uuid,
  kekVersion: positiveInt,
  kcv,
});
export type RootKekConfirm = z.infer<typeof rootKekConfirmSchema>;

export const keyPackageSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.keyPackage),
  id: uuid,
  listenerId,
  target: name,
  distributionId: uuid,
  sequence: positiveInt,
  issuedAt: timestamp,
  expiresAt: timestamp,
  key: z.strictObject({
    id: uuid,
    name,
    version: positiveInt,
    algorithm: z.enum(KEY_ALGORITHMS),
    length: z.number().int().min(1).max(1024),
    usages: z.array(z.enum(KEY_USAGES)).min(1).max(LIMITS.maxUsages),
    exportable: z.boolean(),
    kcv,
  }),
  wrapping: z.strictObject({
    kekId: uuid,
    kekVersion: positiveInt,
    mechanism: z.literal('AES-KWP'),
    blob: base64(LIMITS.maxBlobChars),
  }),
});
export type KeyPackage = z.infer<typeof keyPackageSchema>;

export const RECEIPT_OUTCOMES = ['imported', 'already_present', 'failed', 'rejected', 'destroyed'] as const;
export type ReceiptOutcome = (typeof RECEIPT_OUTCOMES)[number];

const errorCode = z.string().refine((c): c is ErrorCode => Object.prototype.hasOwnProperty.call(ERROR_CODES, c), 'unknown error code');

export const receiptSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.receipt),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  packageId: uuid,
  target: name,
  outcome: z.enum(RECEIPT_OUTCOMES),
  /** KCV computed at the target; present for imported and already_present. */
  kcv: kcv.optional(),
  error: z.strictObject({ code: errorCode, detail: z.string().max(LIMITS.maxTextChars) }).optional(),
});
export type Receipt = z.infer<typeof receiptSchema>;

export const heartbeatSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.heartbeat),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  targets: z.array(z.strictObject({ name, healthy: z.boolean(), detail: z.string().max(LIMITS.maxTextChars).optional() })).max(LIMITS.maxTargets),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

export const messageSchema = z.discriminatedUnion('type', [
  enrollmentRequestSchema,
  rootKekSchema,
  rootKekConfirmSchema,
  keyPackageSchema,
  receiptSchema,
  heartbeatSchema,
]);
export type Message = z.infer<typeof messageSchema>;
export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;
