import { z } from 'zod';
import { LIMITS } from '../limits';
import { base64, kcv, KEY_ALGORITHMS, KEY_USAGES, listenerId, MESSAGE_TYPES, name, positiveInt, TARGET_KINDS, timestamp, uuid } from './common';
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
      /**
       * A key pair's certificate chain when the hub has one for the version
       * (issued by the hub CA or imported): DER certificates in base64, leaf
       * first, each signed by the next. Optional, and only with a public key;
       * for keystore targets, which store a private key with its chain.
       */
      certificateChain: z.array(base64(LIMITS.maxCertificateChars)).min(1).max(LIMITS.maxChainCertificates).optional(),
      /**
       * The kinds of target the key's policy allows (issue 12); absent means
       * the default, `pkcs11` only. The listener refuses a package for a
       * target of another kind (TARGET_KIND_NOT_ALLOWED).
       */
      targetKinds: z.array(z.enum(TARGET_KINDS)).min(1).max(TARGET_KINDS.length).optional(),
      /** The policy allows a cloud JWK import (the key in clear inside TLS); absent means it does not. */
      allowClearImport: z.literal(true).optional(),
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
    if (p.key.certificateChain !== undefined && p.key.publicKey === undefined) {
      ctx.addIssue({ code: 'custom', path: ['key', 'certificateChain'], message: 'a certificate chain comes only with a key pair' });
    }
  });
export type KeyPackage = z.infer<typeof keyPackageSchema>;
