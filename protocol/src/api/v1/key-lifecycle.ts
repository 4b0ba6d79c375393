import { z } from 'zod';
import { kcv, keyName, shortText, timestamp, uuid } from './common';
import { KEY_STATE_ACTIONS, KEY_STATES } from './key-states';
import { keyView } from './keys';

export const keyVersionView = z.strictObject({
  id: uuid,
  version: z.number().int().min(1),
  kcv,
  state: z.enum(KEY_STATES),
  createdAt: timestamp,
  activateAt: timestamp,
  deactivateAt: timestamp.nullable(),
  stateChangedAt: timestamp.nullable(),
  stateReason: z.string().nullable(),
  compromisedAt: timestamp.nullable(),
  destroyedAt: timestamp.nullable(),
});
export type KeyVersionView = z.infer<typeof keyVersionView>;

export const keyDetail = z.strictObject({
  key: keyView,
  lifecycle: z.strictObject({ cryptoperiodSeconds: z.number().int().nullable(), rotateEverySeconds: z.number().int().nullable(), graceSeconds: z.number().int() }),
  versions: z.array(keyVersionView),
});
export type KeyDetail = z.infer<typeof keyDetail>;

export const keyStateBody = z.strictObject({
  action: z.enum(KEY_STATE_ACTIONS),
  /** Omitted: the current version. */
  version: z.number().int().min(1).optional(),
  reason: shortText.optional(),
});
export type KeyStateBody = z.infer<typeof keyStateBody>;

export const keyStateResult = z.strictObject({
  key: keyName,
  version: z.number().int().min(1),
  from: z.enum(KEY_STATES),
  to: z.enum(KEY_STATES),
  /** (listener, target) pairs the signed command was queued to. */
  sites: z.number().int().min(0),
});
export type KeyStateResult = z.infer<typeof keyStateResult>;

export const rotateKeyBody = z.strictObject({ reason: shortText.optional() });
export type RotateKeyBody = z.infer<typeof rotateKeyBody>;

export const rotateKeyResult = z.strictObject({
  key: keyName,
  version: z.number().int().min(2),
  kcv,
  previous: z.number().int().min(1),
  /** Distributions of the new version queued to the sites that hold the key. */
  queued: z.number().int().min(0),
  graceUntil: timestamp.nullable(),
});
export type RotateKeyResult = z.infer<typeof rotateKeyResult>;
