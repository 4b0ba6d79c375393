import { z } from 'zod';
import { LIMITS } from '../limits';
import { base64, kcv, listenerId, MESSAGE_TYPES, positiveInt, timestamp, uuid } from './common';

/**
 * Root KEK rotation (hub to listener, on the listener's `root_kek` subject):
 * the site's next root KEK, wrapped (AES-KWP, RFC 5649) under the root KEK
 * it holds now, and signed by the hub. It carries no hub key: the listener
 * checks the signature against the hub key it pinned at enrollment, and
 * answers with the signed `root_kek_confirm` (the KCV it computed) that
 * enrollment uses too. A compromised root KEK never travels this way (it
 * could not protect its successor): the site enrolls again instead.
 */
export const rootKekRotationSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.rootKekRotation),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  /** The root KEK the new one is wrapped under: the site's current one. */
  wrappedUnder: z.strictObject({ id: uuid, version: positiveInt }),
  kek: z.strictObject({
    id: uuid,
    version: positiveInt,
    kcv,
    mechanism: z.literal('AES-KWP'),
    blob: base64(LIMITS.maxBlobChars),
  }),
});
export type RootKekRotation = z.infer<typeof rootKekRotationSchema>;
