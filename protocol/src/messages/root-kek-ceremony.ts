import { z } from 'zod';
import { LIMITS } from '../limits';
import { base64, kcv, listenerId, MESSAGE_TYPES, positiveInt, timestamp, uuid } from './common';

/** XOR components take 2 or 3 custodians (all needed); Shamir shares up to 5 (any `threshold` of them). */
export const CEREMONY_SCHEMES = ['xor', 'shamir'] as const;
export const MAX_XOR_PARTS = 3;
export const MAX_SHAMIR_PARTS = 5;

const custodian = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9._@-]*$/);

/**
 * A root KEK set up by key components (split knowledge; hub to listener, on
 * the listener's `root_kek` subject, signed by the hub and carrying its key
 * like `root_kek`). It holds no key material: the KCV of every part, who
 * holds it, and the KCV of the key they combine to. The custodians bring
 * the parts to the site themselves (`keyhub-listener root-kek enter`); the
 * listener refuses a part whose KCV is not the one listed here before it
 * stores anything, and answers with the usual signed `root_kek_confirm`.
 */
export const rootKekCeremonySchema = z
  .strictObject({
    type: z.literal(MESSAGE_TYPES.rootKekCeremony),
    id: uuid,
    listenerId,
    issuedAt: timestamp,
    /** Hub signing public key (DER SPKI); the listener checks it against its pinned fingerprint. */
    hubKey: base64(LIMITS.maxSpkiChars),
    ceremonyId: uuid,
    kek: z.strictObject({ id: uuid, version: positiveInt, kcv }),
    scheme: z.enum(CEREMONY_SCHEMES),
    /** Parts needed to rebuild the key: all of them for XOR. */
    threshold: z.number().int().min(2).max(MAX_SHAMIR_PARTS),
    parts: z
      .array(z.strictObject({ index: z.number().int().min(1).max(MAX_SHAMIR_PARTS), kcv, custodian }))
      .min(2)
      .max(MAX_SHAMIR_PARTS),
  })
  .refine((m) => m.parts.every((p, i) => p.index === i + 1), { message: 'parts are listed by index, 1 to n' })
  .refine((m) => (m.scheme === 'xor' ? m.threshold === m.parts.length && m.parts.length <= MAX_XOR_PARTS : m.threshold <= m.parts.length), {
    message: 'XOR needs every part (2 or 3); Shamir a threshold of at most the number of shares',
  });
export type RootKekCeremony = z.infer<typeof rootKekCeremonySchema>;
