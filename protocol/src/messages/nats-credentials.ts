import { z } from 'zod';
import { LIMITS } from '../limits';
import { base64, listenerId, timestamp, uuid } from './common';

/** Type of the hub's answer to an approved enrollment: the site's own NATS user JWT. */
export const NATS_CREDENTIALS_TYPE = 'keyhub.v1.nats_credentials' as const;

/** A NATS user public NKEY: base32, prefix U. */
export const natsUserKey = z.string().regex(/^U[A-Z2-7]{55}$/);

/**
 * The listener's NATS user JWT, issued at approval and signed (inside it) by
 * the hub's NATS account key; the envelope is signed by the hub signing key,
 * which the listener checks against its pinned fingerprint (`hubKey`, as in
 * the root-KEK message). A JWT is no secret: the seed that makes it usable
 * never left the site.
 */
export const natsCredentialsSchema = z.strictObject({
  type: z.literal(NATS_CREDENTIALS_TYPE),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  hubKey: base64(LIMITS.maxSpkiChars),
  userKey: natsUserKey,
  userJwt: z
    .string()
    .max(8192)
    .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/),
});
export type NatsCredentialsMessage = z.infer<typeof natsCredentialsSchema>;
