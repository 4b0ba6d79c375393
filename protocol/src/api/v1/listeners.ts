import { z } from 'zod';
import { listenerId, operatorName, timestamp, uuid, kcv } from './common';

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

/* Site lifecycle: root KEK rotation, a compromised root KEK, decommissioning. */

export const rotateKekBody = z.strictObject({ reason: z.string().min(1).max(256).optional() });
/** `keyhub listener rotate-kek`: the new root KEK is on its way, wrapped under the current one; it is used once the site confirms this KCV. */
export const rotateKekResult = z.strictObject({
  listenerId,
  kekId: uuid,
  version: z.number().int().min(1),
  kcv,
  /** The root KEK it travels under (still the one packages use until the confirmation). */
  wrappedUnder: z.strictObject({ kekId: uuid, version: z.number().int().min(1) }),
});
export type RotateKekResult = z.infer<typeof rotateKekResult>;

/** A key version a site holds (or was sent), for a re-keying list or a decommission record. */
export const siteKeyView = z.strictObject({
  keyId: uuid,
  keyName: z.string().max(512),
  keyVersionId: uuid,
  version: z.number().int().min(1),
  target: z.string().max(256),
  /** The distribution's state there when it was listed (confirmed, sent, ...). */
  state: z.string().max(32),
  /** Whether another site (not decommissioned) holds the same version, confirmed. */
  heldElsewhere: z.boolean(),
});
export type SiteKeyView = z.infer<typeof siteKeyView>;

/** `keyhub listener rekey --compromised`: the site's root KEKs are compromised; it must enroll again. */
export const compromiseKekBody = z.strictObject({ reason: z.string().min(1).max(256).optional() });
export const compromiseKekResult = z.strictObject({
  listenerId,
  state: z.literal('rekey_required'),
  compromisedKeks: z.array(z.strictObject({ kekId: uuid, version: z.number().int().min(1) })).max(10_000),
  cancelledDistributions: z.number().int().min(0),
  /** Every key version that travelled to the site under those KEKs: each must be rotated (re-keyed). */
  keysToRekey: z.array(siteKeyView).max(1_000_000),
});
export type CompromiseKekResult = z.infer<typeof compromiseKekResult>;

/** `keyhub listener decommission`. */
export const decommissionBody = z.strictObject({
  /** Revoke the site at once, without waiting for its destroy confirmations (or sending any). */
  force: z.boolean().optional(),
  /** How long the site's NATS identity stays, at most, for its destroy confirmations. */
  timeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(30 * 86_400)
    .optional(),
  reason: z.string().min(1).max(256).optional(),
});
export const decommissionResult = z.strictObject({
  listenerId,
  state: z.enum(['decommissioning', 'decommissioned']),
  /** Until when the site may still confirm its destroys (decommissioning only). */
  deadline: timestamp.nullable(),
  held: z.array(siteKeyView).max(1_000_000),
  /** The versions held only at this site: re-key them, or they are gone with it. */
  heldOnlyHere: z.array(siteKeyView).max(1_000_000),
  destroyCommands: z.number().int().min(0),
  destroysOutstanding: z.number().int().min(0),
  cancelledDistributions: z.number().int().min(0),
  revokedKeks: z.number().int().min(0),
  revokedNatsKeys: z.number().int().min(0),
});
export type DecommissionResult = z.infer<typeof decommissionResult>;

/**
 * `keyhub listener root-kek components`: the enrollment approved with a
 * root KEK by key components. One custodian per part, in part order; with
 * `threshold`, Shamir shares (any `threshold` of them rebuild the key),
 * without it XOR components (all needed, 2 or 3).
 */
export const rootKekCeremonyBody = z.strictObject({
  fingerprint: z.string().min(16).max(256),
  parts: z.number().int().min(2).max(5),
  threshold: z.number().int().min(2).max(5).optional(),
  custodians: z.array(operatorName).min(2).max(5),
});

/** One custodian's part, released to them once: shown to nobody else, never stored. */
export const rootKekPartView = z.strictObject({
  ceremonyId: uuid,
  listenerId,
  scheme: z.enum(['xor', 'shamir']),
  part: z.number().int().min(1),
  parts: z.number().int().min(2),
  threshold: z.number().int().min(2),
  custodian: operatorName,
  /** Grouped upper-case hex; a Shamir share starts with its index and '-'. */
  component: z.string().max(128),
  kcv,
  /** The KCV of the root KEK the parts combine to. */
  kekKcv: kcv,
  /** Parts still to be fetched by their custodians after this one. */
  remaining: z.number().int().min(0),
});
export type RootKekPartView = z.infer<typeof rootKekPartView>;
