import { z } from 'zod';
import { timestamp } from './common';

/**
 * Lifecycle commands sent to sites (suspend, resume, deactivate, compromise,
 * destroy): per key version, which sites confirmed each command and which
 * are outstanding.
 */
export const commandSiteView = z.strictObject({
  commandId: z.uuid(),
  listener: z.string(),
  target: z.string(),
  /** pending (outstanding), confirmed, failed. */
  state: z.string(),
  outcome: z.string().nullable(),
  effect: z.string().nullable(),
  errorCode: z.string().nullable(),
  attempts: z.number().int(),
  queuedAt: timestamp,
  answeredAt: timestamp.nullable(),
});

/** One command of one key version (one queueing of it), with its sites. */
export const commandStatusRow = z.strictObject({
  key: z.string(),
  version: z.number().int(),
  action: z.string(),
  confirmed: z.number().int(),
  outstanding: z.number().int(),
  failed: z.number().int(),
  sites: z.array(commandSiteView).max(100_000),
});
export type CommandStatusRowView = z.infer<typeof commandStatusRow>;
export const commandStatusList = z.strictObject({ commands: z.array(commandStatusRow).max(100_000) });
