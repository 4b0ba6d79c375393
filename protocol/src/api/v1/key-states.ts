import { z } from 'zod';
import { timestamp } from './common';

/** NIST SP 800-57 key version states (the hub's domain/key-lifecycle.ts holds the transitions). */
export const KEY_STATES = ['pre-activation', 'active', 'suspended', 'deactivated', 'compromised', 'destroyed'] as const;
export type KeyStateName = (typeof KEY_STATES)[number];

/** What an operator can ask of a key version. */
export const KEY_STATE_ACTIONS = ['activate', 'suspend', 'resume', 'deactivate', 'compromise', 'destroy'] as const;
export type KeyStateActionName = (typeof KEY_STATE_ACTIONS)[number];

/** Up to 100 years, in seconds. */
const seconds = z
  .number()
  .int()
  .min(1)
  .max(100 * 366 * 86_400);

/** Lifecycle settings a key can be created with. */
export const keyLifecycleFields = {
  /** A date in the future starts version 1 in pre-activation; the scheduler activates it then. */
  activateAt: timestamp.optional(),
  /** Each version is deactivated this long after it became active. */
  cryptoperiodSeconds: seconds.optional(),
  /** Automatic rotation: a new version this long after the current one became active. */
  rotateEverySeconds: seconds.optional(),
  /** After a rotation, older versions stay active at the sites this long (default one day). */
  graceSeconds: seconds.or(z.literal(0)).optional(),
};
