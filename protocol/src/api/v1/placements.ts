import { z } from 'zod';
import { INVENTORY_STATES } from '../../messages/inventory';
import { kcv, keyName, listenerId, targetName, timestamp, uuid } from './common';

/*
 * Distribution policies ("placements"): key K, its current version, must be
 * at these sites and targets. `keyhub policy` is taken by approval policies,
 * so the CLI calls these `keyhub placement ...`.
 */

/** Label keys and values: short, subject-free tokens, like Kubernetes labels. */
export const labelKey = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/);
export const labelValue = z
  .string()
  .max(63)
  .regex(/^[A-Za-z0-9._-]*$/);
export const labels = z.record(labelKey, labelValue).refine((l) => Object.keys(l).length <= 32, 'at most 32 labels');
export type Labels = z.infer<typeof labels>;

/** `keyhub listener label <id> k=v ... --remove k`: set and remove in one change. */
export const setLabelsBody = z.strictObject({
  set: labels.optional(),
  remove: z.array(labelKey).max(32).optional(),
});
export type SetLabelsBody = z.infer<typeof setLabelsBody>;
export const labelsView = z.strictObject({ listenerId, labels });

/** Placement names travel in URL paths: no slash. */
export const placementName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/);
export const placementParams = z.strictObject({ name: placementName });

export const createPlacementBody = z
  .strictObject({
    name: placementName,
    key: keyName,
    /** Sites by id. */
    listeners: z.array(listenerId).max(10_000).optional(),
    /** Sites by labels: every active listener carrying all of them. */
    selector: labels.optional(),
    /** Target names at each site; omitted or empty: every target of the site. */
    targets: z.array(targetName).max(64).optional(),
    /** Rotation follows: a new current version goes where the policy says. Default true. */
    futureVersions: z.boolean().optional(),
    /** Sites that match later (a label set, an enrollment) are covered. Default true. */
    futureSites: z.boolean().optional(),
    /** Versions of the key at a site that the policy does not call for are destroyed. Default false. */
    destroyExtras: z.boolean().optional(),
  })
  .refine((b) => (b.listeners?.length ?? 0) > 0 || (b.selector !== undefined && Object.keys(b.selector).length > 0), 'name listeners or a non-empty selector');
export type CreatePlacementBody = z.infer<typeof createPlacementBody>;

/** `keyhub placement update`: which sites and targets it names; the key and the options stay. null selector: none. */
export const updatePlacementBody = z.strictObject({
  listeners: z.array(listenerId).max(10_000).optional(),
  selector: labels.nullable().optional(),
  targets: z.array(targetName).max(64).optional(),
});
export type UpdatePlacementBody = z.infer<typeof updatePlacementBody>;

export const placementView = z.strictObject({
  id: uuid,
  name: placementName,
  key: keyName,
  listeners: z.array(listenerId),
  selector: labels.nullable(),
  targets: z.array(targetName),
  futureVersions: z.boolean(),
  futureSites: z.boolean(),
  destroyExtras: z.boolean(),
  /** The version the policy was made (or last approved) for. */
  version: z.number().int().min(1),
  /** Under dual control: the sites approved so far ("listener/target"). */
  approvedSites: z.array(z.string()).nullable(),
  pendingApproval: uuid.nullable(),
  createdBy: z.string(),
  createdAt: timestamp,
  /** Sites it has placed the key at, with the version. */
  placed: z.array(z.strictObject({ listenerId, target: targetName, version: z.number().int().min(1) })).optional(),
});
export type PlacementView = z.infer<typeof placementView>;
export const placementList = z.strictObject({ placements: z.array(placementView) });
export const createPlacementResult = z.strictObject({ placement: placementView });
export const deletePlacementQuery = z.strictObject({
  /** Destroy what the policy placed (where no other policy wants it); default: leave keys where they are. */
  destroy: z.enum(['true', 'false']).optional(),
});
export const deletePlacementResult = z.strictObject({ name: placementName, deleted: z.literal(true), destroyCommands: z.number().int().min(0) });

/** What a reconcile run did (also what `keyhub placement reconcile` prints). */
export const reconcileResult = z.strictObject({
  placements: z.number().int().min(0),
  queued: z.number().int().min(0),
  removed: z.number().int().min(0),
  approvalsRequested: z.number().int().min(0),
  skipped: z.boolean(),
});
export type ReconcileResultView = z.infer<typeof reconcileResult>;

export const DRIFT_KINDS = ['missing', 'extra', 'kcv_mismatch', 'state_mismatch'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export const driftFindingView = z.strictObject({
  listenerId,
  target: targetName,
  kind: z.enum(DRIFT_KINDS),
  key: keyName.nullable(),
  keyId: uuid.nullable(),
  version: z.number().int().nullable(),
  objectId: z.string().nullable(),
  label: z.string().nullable(),
  expectedKcv: kcv.nullable(),
  reportedKcv: kcv.nullable(),
  expectedState: z.string().nullable(),
  reportedState: z.enum(INVENTORY_STATES).nullable(),
  firstSeenAt: timestamp,
  lastSeenAt: timestamp,
});
export type DriftFindingView = z.infer<typeof driftFindingView>;
export const driftQuery = z.strictObject({ listener: listenerId.optional(), limit: z.coerce.number().int().min(1).max(100_000).default(1000) });
export const driftReport = z.strictObject({
  findings: z.array(driftFindingView),
  counts: z.strictObject({ missing: z.number().int(), extra: z.number().int(), kcv_mismatch: z.number().int(), state_mismatch: z.number().int() }),
  /** Listeners with a complete inventory and when it was taken. */
  inventories: z.array(z.strictObject({ listenerId, takenAt: timestamp, items: z.number().int().min(0) })),
});
export type DriftReport = z.infer<typeof driftReport>;
