import { z } from 'zod';
import { listenerId, timestamp, uuid, kcv } from './common';

export const listenerView = z.strictObject({
  id: listenerId,
  state: z.string(),
  fingerprint: z.string(),
  targets: z.array(z.string()),
  hostname: z.string().nullable(),
  requestedAt: timestamp,
  activatedAt: timestamp.nullable(),
  lastSeenAt: timestamp.nullable(),
  backlog: z.number().int().min(0),
});
export type ListenerView = z.infer<typeof listenerView>;
export const listenerList = z.strictObject({ listeners: z.array(listenerView) });
export const listenerParams = z.strictObject({ id: listenerId });

/** The fingerprint as the operator read it at the site; case and separators are ignored. */
export const approveListenerBody = z.strictObject({ fingerprint: z.string().min(16).max(256) });
export const approveListenerResult = z.strictObject({ listenerId, kekId: uuid, kcv });

/** `keyhub listener register`: the bootstrap credential a site needs to enroll. */
export const registerListenerBody = z.strictObject({
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(90 * 86_400)
    .optional(),
});
export const registerListenerResult = z.strictObject({
  listenerId,
  /** The bootstrap user's public NKEY (what the audit trail and a later revocation name). */
  bootstrapKey: z.string().regex(/^U[A-Z2-7]{55}$/),
  expiresAt: timestamp,
  /** A NATS `.creds` file (user JWT and seed): hand it to the site, keep it nowhere else. Shown once. */
  creds: z.string().max(16_384),
});
export type RegisterListenerResult = z.infer<typeof registerListenerResult>;

/** `keyhub listener revoke`: cuts a site off NATS (its user and any bootstrap) and marks it revoked. */
export const revokeListenerBody = z.strictObject({ reason: z.string().min(1).max(256).optional() });
export const revokeListenerResult = z.strictObject({ listenerId, state: z.literal('revoked'), revokedNatsKeys: z.number().int().min(0) });
