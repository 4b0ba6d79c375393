import { z } from 'zod';
import { kcv, listenerId, timestamp, uuid } from './common';

const targetName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/);

/** One target of a listener as the hub sees it: its KEK (own or the root KEK), health from heartbeats, inventory counts. */
export const targetView = z.strictObject({
  name: targetName,
  kind: z.string().max(32),
  /** `root`: packages travel under the site's root KEK (its own token); `own`: a KEK installed in this target's token. */
  kek: z.strictObject({
    scope: z.enum(['root', 'own']),
    /** For `own`: requested (awaiting approval), pending_confirmation, active, failed; for `root`: the root KEK's presence. */
    state: z.string().max(32),
    kekId: uuid.nullable(),
    version: z.number().int().min(1).nullable(),
    kcv: kcv.nullable(),
    /** The transport key's fingerprint (own KEKs), to compare with what the site printed. */
    transportFingerprint: z.string().max(128).nullable(),
  }),
  health: z.strictObject({ healthy: z.boolean().nullable(), detail: z.string().max(256).nullable(), at: timestamp.nullable() }),
  inventory: z.strictObject({ items: z.number().int().min(0), at: timestamp.nullable() }),
  /**
   * `approved`: receives pushes (declared at enrollment, or added by an
   * approved update); `pending_add`: a signed update awaits approval, nothing
   * is sent to it; `pending_remove`: still receives until the removal is approved.
   */
  approval: z.enum(['approved', 'pending_add', 'pending_remove']),
  /** The signed update awaiting approval: its id (the approval names it), and the settings summary the site sent. */
  update: z.strictObject({ id: uuid, op: z.enum(['add', 'remove']), kind: z.string().max(32), settings: z.record(z.string().max(64), z.string().max(256)), at: timestamp }).nullable(),
});
export type TargetView = z.infer<typeof targetView>;
export const targetList = z.strictObject({ listenerId, targets: z.array(targetView).max(64) });
export const targetParams = z.strictObject({ id: listenerId, target: targetName });

/** The transport key fingerprint as the operator read it at the site. */
export const approveTargetKekBody = z.strictObject({ fingerprint: z.string().min(16).max(256) });
export const approveTargetKekResult = z.strictObject({ listenerId, target: targetName, kekId: uuid, version: z.number().int().min(1), kcv });
export type ApproveTargetKekResult = z.infer<typeof approveTargetKekResult>;

/** `keyhub listener target rotate-kek`: the target's next KEK is on its way, wrapped under its current one; used once the site confirms this KCV. */
export const rotateTargetKekBody = z.strictObject({ reason: z.string().min(1).max(256).optional() });
export const rotateTargetKekResult = z.strictObject({
  listenerId,
  target: targetName,
  kekId: uuid,
  version: z.number().int().min(1),
  kcv,
  /** The target KEK it travels under (still the one packages use until the confirmation). */
  wrappedUnder: z.strictObject({ kekId: uuid, version: z.number().int().min(1) }),
  /** Older versions the site destroys when it installs this one (never the one it travels under). */
  retires: z.array(z.strictObject({ kekId: uuid, version: z.number().int().min(1) })).max(32),
});
export type RotateTargetKekResult = z.infer<typeof rotateTargetKekResult>;

/** Approves a signed target update: the id shown by `keyhub listener target list` (an update replaced meanwhile is not the one approved). */
export const approveTargetUpdateBody = z.strictObject({ updateId: uuid });
export const approveTargetUpdateResult = z.strictObject({
  listenerId,
  target: targetName,
  op: z.enum(['add', 'remove']),
  kind: z.string().max(32),
  /** For a removal: distributions to the target retired, placements narrowed, target KEKs revoked. */
  retired: z.strictObject({ distributions: z.number().int().min(0), keks: z.number().int().min(0) }),
});
export type ApproveTargetUpdateResult = z.infer<typeof approveTargetUpdateResult>;
