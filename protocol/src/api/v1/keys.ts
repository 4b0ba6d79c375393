import { z } from 'zod';
import { KEY_ALGORITHMS, KEY_USAGES, TARGET_KINDS } from '../../messages';
import { kcv, keyName, timestamp, uuid } from './common';
import { keyLifecycleFields } from './key-states';

export const createKeyBody = z.strictObject({
  name: keyName,
  algorithm: z.enum(KEY_ALGORITHMS),
  usages: z.array(z.enum(KEY_USAGES)).min(1).max(KEY_USAGES.length).optional(),
  exportable: z.boolean().optional(),
  /** Distributing a sensitive key falls under the `distribution.sensitive` approval policy. */
  sensitive: z.boolean().optional(),
  /** Kinds of target the key may reach (issue 12); default `pkcs11` only (an HSM-only key). */
  targetKinds: z.array(z.enum(TARGET_KINDS)).min(1).max(TARGET_KINDS.length).optional(),
  /** Allows a cloud JWK import, which sends the key in clear inside TLS; default false. Audited. */
  allowClearImport: z.boolean().optional(),
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
  targetKinds: z.array(z.string().max(32)).max(16),
  allowClearImport: z.boolean(),
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

/** What a cloud KMS target's receipt says of an import (stored with the distribution it confirmed). */
export const cloudImportView = z.strictObject({ keyId: z.string(), versionId: z.string(), importState: z.string(), wrapping: z.string() });
export type CloudImportView = z.infer<typeof cloudImportView>;

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
  /** A cloud target's import as its confirming receipt told it: the cloud's key and version ids, its import state, the wrapping used (issue 12). */
  cloud: cloudImportView.nullable(),
});
export type StatusRowView = z.infer<typeof statusRow>;
export const statusList = z.strictObject({ rows: z.array(statusRow) });
export const keyNameParams = z.strictObject({ name: keyName });

/**
 * `keyhub key target-policy <name> --target-kinds ...`: the kinds of target a
 * key may reach from now on. A change that widens it (a kind added, clear
 * import allowed) is a dual-control request under `key.target_policy`.
 */
export const targetPolicyBody = z.strictObject({
  targetKinds: z.array(z.enum(TARGET_KINDS)).min(1).max(TARGET_KINDS.length),
  allowClearImport: z.boolean().optional(),
});
export type TargetPolicyBody = z.infer<typeof targetPolicyBody>;
export const targetPolicyResult = z.strictObject({
  key: keyName,
  targetKinds: z.array(z.enum(TARGET_KINDS)),
  allowClearImport: z.boolean(),
  /** Key versions whose row MAC was recomputed over the new policy. */
  versions: z.number().int().min(0),
});
export type TargetPolicyResult = z.infer<typeof targetPolicyResult>;
