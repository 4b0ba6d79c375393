import { z } from 'zod';
import { kcv, keyName, listenerId, targetName, uuid } from './common';

export const destination = z.strictObject({ listenerId, target: targetName.optional() });
export type DestinationBody = z.infer<typeof destination>;
const destinations = z.union([z.literal('all'), z.array(destination).min(1).max(10_000)]);
const keySelector = z.strictObject({ name: keyName, version: z.number().int().min(1).optional() });

export const distributeBody = z
  .strictObject({
    keys: z.array(keySelector).min(1).max(100_000).optional(),
    keyPrefix: keyName.optional(),
    to: destinations,
  })
  .refine((b) => (b.keys === undefined) !== (b.keyPrefix === undefined), { message: 'give keys or keyPrefix, not both' });
export type DistributeBody = z.infer<typeof distributeBody>;

export const distributionRef = z.strictObject({ distributionId: uuid, key: keyName, version: z.number().int(), listenerId, target: z.string() });
export const distributeResult = z.strictObject({
  keys: z.array(z.strictObject({ name: keyName, version: z.number().int(), kcv })),
  queued: z.array(distributionRef),
  skipped: z.array(distributionRef.extend({ state: z.string() })),
  /** Set when the call ran as an approved request. */
  approvalId: uuid.optional(),
});
export type DistributeResultBody = z.infer<typeof distributeResult>;

/** Progress of the distributions of these key versions to these destinations (what `distribute --wait` follows). */
export const progressBody = z.strictObject({
  keys: z
    .array(z.strictObject({ name: keyName, version: z.number().int().min(1) }))
    .min(1)
    .max(100_000),
  to: destinations,
});
export type ProgressBody = z.infer<typeof progressBody>;
export const progressResult = z.strictObject({
  total: z.number().int(),
  confirmed: z.number().int(),
  failed: z.number().int(),
  pending: z.number().int(),
  /** The first failures, at most 100. */
  failures: z.array(z.strictObject({ key: keyName, version: z.number().int(), listenerId, target: z.string(), errorCode: z.string() })),
});
export type ProgressResult = z.infer<typeof progressResult>;
