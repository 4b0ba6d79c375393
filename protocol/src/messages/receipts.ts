import { z } from 'zod';
import { LIMITS } from '../limits';
import { ERROR_CODES, type ErrorCode } from '../errors';
import { kcv, listenerId, MESSAGE_TYPES, name, timestamp, uuid } from './common';

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

