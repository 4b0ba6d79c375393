import { createHash } from 'node:crypto';
import { z } from 'zod';
import { LIMITS } from '../limits';
import { ERROR_CODES, type ErrorCode } from '../errors';
import { freeText, kcv, listenerId, MESSAGE_TYPES, name, timestamp, uuid } from './common';

export const RECEIPT_OUTCOMES = ['imported', 'already_present', 'failed', 'rejected', 'destroyed'] as const;
export type ReceiptOutcome = (typeof RECEIPT_OUTCOMES)[number];

const errorCode = z.string().refine((c): c is ErrorCode => Object.prototype.hasOwnProperty.call(ERROR_CODES, c), 'unknown error code');

/** Lower-case hex SHA-256. */
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * The hash a receipt names: SHA-256 of the exact envelope bytes the listener
 * received and verified (as they travelled on the wire, not re-encoded). The
 * hub keeps the same hash of every package it signed, so a receipt binds to
 * one package and cannot be moved to another one that shares its id.
 */
export function packageSha256(envelopeBytes: Uint8Array): string {
  return createHash('sha256').update(envelopeBytes).digest('hex');
}

export const receiptSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.receipt),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  packageId: uuid,
  /** `packageSha256` of the signed package this receipt answers. */
  packageSha256: sha256Hex,
  target: name,
  outcome: z.enum(RECEIPT_OUTCOMES),
  /** KCV computed at the target; present for imported and already_present. */
  kcv: kcv.optional(),
  /**
   * A cloud KMS target (issue 12): the cloud's key and version ids, its own
   * word for the import state, and the wrapping used. The KCV above is the
   * listener's, over exactly the material it wrapped: a cloud cannot compute it.
   */
  cloud: z.strictObject({ keyId: freeText(LIMITS.maxTextChars), versionId: freeText(LIMITS.maxTextChars), importState: freeText(64), wrapping: freeText(64) }).optional(),
  error: z.strictObject({ code: errorCode, detail: freeText(LIMITS.maxTextChars) }).optional(),
});
export type Receipt = z.infer<typeof receiptSchema>;
