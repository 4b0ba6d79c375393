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
});
export type TargetView = z.infer<typeof targetView>;
export const targetList = z.strictObject({ listenerId, targets: z.array(targetView).max(64) });
export const targetParams = z.strictObject({ id: listenerId, target: targetName });

/** The transport key fingerprint as the operator read it at the site. */
export const approveTargetKekBody = z.strictObject({ fingerprint: z.string().min(16).max(256) });
export const approveTargetKekResult = z.strictObject({ listenerId, target: targetName, kekId: uuid, version: z.number().int().min(1), kcv });
export type ApproveTargetKekResult = z.infer<typeof approveTargetKekResult>;
