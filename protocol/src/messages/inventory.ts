import { z } from 'zod';
import { LIMITS } from '../limits';
import { freeText, listenerId, kcv, MESSAGE_TYPES, name, positiveInt, timestamp, uuid } from './common';

/** Items per message at most; the sender also cuts parts by encoded size, so a part stays inside LIMITS.maxMessageBytes. */
export const INVENTORY_MAX_ITEMS = 200;
/** Parts of one report: 2,000 x 200 = 400,000 objects at one site. */
export const INVENTORY_MAX_PARTS = 2_000;

/** What a target says about one object: usable (active) or held with its usages switched off (disabled). */
export const INVENTORY_STATES = ['active', 'disabled'] as const;
export type InventoryState = (typeof INVENTORY_STATES)[number];

/**
 * One object a target holds. `keyId`/`version` are present when the object
 * carries a Keyhub identity (for PKCS#11 its CKA_ID); an object without one
 * (planted, or made by someone else) has only its `objectId`. `kcv` is the
 * one the listener verified when it imported the object (or computed in the
 * target); absent when the listener cannot vouch for it.
 */
export const inventoryItemSchema = z
  .strictObject({
    target: name,
    objectId: z
      .string()
      .regex(/^[0-9a-f]*$/)
      .max(256),
    keyId: uuid.optional(),
    version: positiveInt.optional(),
    label: freeText(LIMITS.maxNameChars),
    kcv: kcv.optional(),
    state: z.enum(INVENTORY_STATES),
  })
  .refine((i) => (i.keyId === undefined) === (i.version === undefined), 'keyId and version go together');
export type InventoryItemReport = z.infer<typeof inventoryItemSchema>;

/**
 * A signed inventory of what a listener's targets hold, in parts: one report
 * (`reportId`, taken at `takenAt`) is cut into `of` messages of at most
 * INVENTORY_MAX_ITEMS items each, so no message outgrows the wire limit. The
 * hub acts on a report only when every part has arrived. `targets` names the
 * targets that were read (a target whose read failed is left out, so its keys
 * are not called missing).
 */
export const inventoryReportSchema = z
  .strictObject({
    type: z.literal(MESSAGE_TYPES.inventory),
    id: uuid,
    listenerId,
    issuedAt: timestamp,
    reportId: uuid,
    takenAt: timestamp,
    part: z.number().int().min(1).max(INVENTORY_MAX_PARTS),
    of: z.number().int().min(1).max(INVENTORY_MAX_PARTS),
    targets: z.array(name).max(LIMITS.maxTargets),
    items: z.array(inventoryItemSchema).max(INVENTORY_MAX_ITEMS),
  })
  .refine((r) => r.part <= r.of, 'part is beyond of');
export type InventoryReport = z.infer<typeof inventoryReportSchema>;
