import { z } from 'zod';
import { LIMITS } from '../limits';
import { natsUserKey } from './nats-credentials';
import { base64, freeText, kcv, listenerId, MESSAGE_TYPES, name, OAEP_HASHES, oaepWrappedKek, positiveInt, TARGET_KINDS, timestamp, uuid } from './common';

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
  hostname: freeText(LIMITS.maxNameChars).optional(),
  /** The site's own NATS user public NKEY (its seed stays in the listener home); approval issues its JWT. */
  natsUserKey,
});
export type EnrollmentRequest = z.infer<typeof enrollmentRequestSchema>;

export const rootKekSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.rootKek),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  /** Hub signing public key (DER SPKI); the listener checks it against its pinned fingerprint. */
  hubKey: base64(LIMITS.maxSpkiChars),
  kek: oaepWrappedKek,
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
