import { z } from 'zod';
import { LIMITS } from '../limits';
import { base64, kcv, KEY_ALGORITHMS, KEY_USAGES, listenerId, MESSAGE_TYPES, name, positiveInt, timestamp, uuid } from './common';
import { isKeyPair } from './key-algorithms';

export const keyPackageSchema = z
  .strictObject({
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
      /** A key pair's public key, DER SubjectPublicKeyInfo; present exactly when the algorithm is a key pair (the private key is in the blob, PKCS#8 under KWP). */
      publicKey: base64(LIMITS.maxSpkiChars).optional(),
    }),
    wrapping: z.strictObject({
      kekId: uuid,
      kekVersion: positiveInt,
      mechanism: z.literal('AES-KWP'),
      blob: base64(LIMITS.maxBlobChars),
    }),
  })
  .superRefine((p, ctx) => {
    if (isKeyPair(p.key.algorithm) !== (p.key.publicKey !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['key', 'publicKey'], message: 'a public key comes with, and only with, a key pair algorithm' });
    }
  });
export type KeyPackage = z.infer<typeof keyPackageSchema>;
