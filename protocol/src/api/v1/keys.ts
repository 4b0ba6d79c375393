import { z } from 'zod';
import { KEY_ALGORITHMS, KEY_USAGES } from '../../messages';
import { kcv, keyName, timestamp, uuid } from './common';
import { keyLifecycleFields } from './key-states';

export const createKeyBody = z.strictObject({
  name: keyName,
  algorithm: z.enum(KEY_ALGORITHMS),
  usages: z.array(z.enum(KEY_USAGES)).min(1).max(KEY_USAGES.length).optional(),
  exportable: z.boolean().optional(),
  /** Distributing a sensitive key falls under the `distribution.sensitive` approval policy. */
  sensitive: z.boolean().optional(),
  /** Bulk provisioning: `count` keys named `<name>-00001` ... in one transaction. */
  count: z.number().int().min(1).max(100_000).optional(),
  ...keyLifecycleFields,
});
export type CreateKeyBody = z.infer<typeof createKeyBody>;

export const createdKey = z.strictObject({ id: uuid, name: keyName, algorithm: z.enum(KEY_ALGORITHMS), version: z.number().int().min(1), kcv });
export const createKeyResult = z.strictObject({ keys: z.array(createdKey) });

export const keyView = z.strictObject({
  id: uuid,
  name: keyName,
  algorithm: z.string(),
  state: z.string(),
  currentVersion: z.number().int(),
  kcv: kcv.nullable(),
  usages: z.array(z.string()),
  exportable: z.boolean(),
  sensitive: z.boolean(),
  createdBy: z.string(),
  createdAt: timestamp,
});
export type KeyView = z.infer<typeof keyView>;
export const keyList = z.strictObject({ keys: z.array(keyView), next: keyName.nullable() });
export const keyListQuery = z.strictObject({
  prefix: z.string().max(128).optional(),
  after: z.string().max(128).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

/** One key version at one listener's target. */
export const statusRow = z.strictObject({
  key: keyName,
  version: z.number().int(),
  kcv,
  listener: z.string(),
  target: z.string(),
  state: z.string(),
  attempts: z.number().int(),
  targetKcv: z.string().nullable(),
  errorCode: z.string().nullable(),
  updatedAt: z.string(),
  confirmedAt: timestamp.nullable(),
});
export type StatusRowView = z.infer<typeof statusRow>;
export const statusList = z.strictObject({ rows: z.array(statusRow) });
export const keyNameParams = z.strictObject({ name: keyName });
