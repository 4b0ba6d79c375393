import { z } from 'zod';
import { LIMITS } from '../limits';
import { base64, kcv, KEY_ALGORITHMS, KEY_USAGES, listenerId, MESSAGE_TYPES, name, positiveInt, timestamp, uuid } from './common';

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
