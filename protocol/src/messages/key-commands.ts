import { createHash } from 'node:crypto';
import { z } from 'zod';
import { LIMITS } from '../limits';
import { ERROR_CODES, type ErrorCode } from '../errors';
import { freeText, kcv, KEY_USAGES, listenerId, MESSAGE_TYPES, name, positiveInt, timestamp, uuid } from './common';
import { sha256Hex } from './receipts';

/**
 * Lifecycle commands (NIST SP 800-57 states) the hub sends to every site
 * that holds a key version, and the site's signed answer.
 *
 * - suspend: the key is not used for now (usages off at the target), resume
 *   switches its policy's usages back on.
 * - deactivate: no new protection (encrypt, sign, wrap, derive off), but old
 *   data can still be processed (decrypt, verify, unwrap stay as the policy
 *   gave them).
 * - compromise: the key may not be used at all at the site (every usage off,
 *   or the object destroyed where the target cannot switch usages off); the
 *   site remembers the version and refuses any later package of it.
 * - destroy: the object is gone; the site refuses any later package of it.
 *   With reason 'policy' (the site left a distribution policy; the version
 *   lives on) only that target's packages issued before the command are
 *   refused: the site may match the policy again.
 *
 * compromise and destroy travel on the urgent lane (subjects.urgent) and
 * never expire: a command that may not be skipped must not be skippable by
 * waiting. The other actions carry an expiry like packages.
 */
export const KEY_COMMAND_ACTIONS = ['suspend', 'resume', 'deactivate', 'compromise', 'destroy'] as const;
export type KeyCommandActionName = (typeof KEY_COMMAND_ACTIONS)[number];

/** Actions that never expire and travel on the urgent lane. */
export const URGENT_KEY_COMMAND_ACTIONS: ReadonlySet<KeyCommandActionName> = new Set(['compromise', 'destroy']);

/** Actions after which the site refuses every package of the version (its tombstones). */
export const TOMBSTONE_KEY_COMMAND_ACTIONS: ReadonlySet<KeyCommandActionName> = new Set(['compromise', 'destroy']);

/** Why the hub sends the command (for the site's log; the audit trail at the hub has the operator's words). */
export const KEY_COMMAND_REASONS = ['operator', 'rotation', 'policy', 'decommission', 'schedule'] as const;

export const keyCommandSchema = z
  .strictObject({
    type: z.literal(MESSAGE_TYPES.keyCommand),
    /** Command id: the site carries out each id once (its command journal). */
    id: uuid,
    listenerId,
    target: name,
    issuedAt: timestamp,
    /** Required for suspend, resume and deactivate; absent for compromise and destroy (they never expire). */
    expiresAt: timestamp.optional(),
    action: z.enum(KEY_COMMAND_ACTIONS),
    reason: z.enum(KEY_COMMAND_REASONS),
    key: z.strictObject({
      id: uuid,
      name,
      version: positiveInt,
      kcv,
      /** The key's policy usages: what resume switches back on, and what deactivate keeps of them. */
      usages: z.array(z.enum(KEY_USAGES)).min(1).max(LIMITS.maxUsages),
    }),
  })
  .refine((c) => (URGENT_KEY_COMMAND_ACTIONS.has(c.action) ? c.expiresAt === undefined : c.expiresAt !== undefined), {
    message: 'compromise and destroy never expire; every other command does',
    path: ['expiresAt'],
  });
export type KeyCommand = z.infer<typeof keyCommandSchema>;

export const COMMAND_OUTCOMES = ['done', 'already_done', 'failed', 'rejected'] as const;
export type CommandOutcome = (typeof COMMAND_OUTCOMES)[number];

/** What the target now holds for the version after the command. */
export const COMMAND_EFFECTS = ['usages_off', 'usages_restored', 'protect_usages_off', 'destroyed', 'absent'] as const;
export type CommandEffect = (typeof COMMAND_EFFECTS)[number];

const errorCode = z.string().refine((c): c is ErrorCode => Object.prototype.hasOwnProperty.call(ERROR_CODES, c), 'unknown error code');

/** SHA-256 of the command envelope exactly as received: what a command receipt names (as receipts name packages). */
export function commandSha256(envelopeBytes: Uint8Array): string {
  return createHash('sha256').update(envelopeBytes).digest('hex');
}

/**
 * The site's signed answer to a command. It names the SHA-256 of the exact
 * command envelope it answers, so the hub applies it to that command only.
 * done / already_done: the target is in the state the command asked for
 * (`effect` says how); failed: a target failure (`error`); rejected: the
 * command was refused (expired, superseded, not for this site).
 */
export const commandReceiptSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.commandReceipt),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  commandId: uuid,
  commandSha256: sha256Hex,
  target: name,
  action: z.enum(KEY_COMMAND_ACTIONS),
  outcome: z.enum(COMMAND_OUTCOMES),
  effect: z.enum(COMMAND_EFFECTS).optional(),
  error: z.strictObject({ code: errorCode, detail: freeText(LIMITS.maxTextChars) }).optional(),
});
export type CommandReceipt = z.infer<typeof commandReceiptSchema>;
