import { z } from 'zod';

/*
 * The audit export: JSON lines, a header with the hub signing key, the events
 * in sequence order, then the checkpoints. Line-oriented so that it can be
 * streamed both ways and inspected with grep and jq. A verifier never trusts
 * the header's key alone: it checks it against a fingerprint it pinned.
 */
/**
 * 2: checkpoints carry their chain link (at, prevSeq, prevDigest).
 * 3: an optional `range` (`keyhub audit export --from/--to`). Versions 1 and 2 are still read.
 */
export const AUDIT_EXPORT_VERSION = 3;

/**
 * A range export holds the events asked for (`from`..`to`) inside a window
 * the verifier can tie to signed checkpoints: it starts at `start`, the
 * event of the last checkpoint at or before `from` (1 when there is none),
 * whose signed hash covers everything before it, and runs to the first
 * checkpoint at or after `to` (or to the head, unsigned beyond the last
 * checkpoint). `toHead` is false when the ledger went on after the file's
 * last event: a site's checkpoint beyond it is then no sign of truncation.
 * The header is not signed: it says what was asked, the checkpoints prove it.
 */
export const exportRange = z.strictObject({
  from: z.number().int().min(1),
  /** null: to the head as of the export. */
  to: z.number().int().min(1).nullable(),
  start: z.number().int().min(1),
  toHead: z.boolean(),
  /** The bounds as the operator gave them (a sequence number or a time). */
  asked: z.strictObject({ from: z.string().max(64).optional(), to: z.string().max(64).optional() }),
});
export type ExportRange = z.infer<typeof exportRange>;

export const exportHeaderLine = z.strictObject({
  type: z.literal('header'),
  hubSigningKey: z.string().min(1).max(2048),
  fingerprint: z.string().max(256),
  version: z.union([z.literal(1), z.literal(2), z.literal(AUDIT_EXPORT_VERSION)]).optional(),
  range: exportRange.optional(),
});
export const exportEventLine = z.strictObject({
  type: z.literal('event'),
  seq: z.number().int(),
  at: z.string().max(64),
  actor: z.string().max(256),
  action: z.string().max(256),
  subject: z.string().max(1024),
  details: z.record(z.string(), z.json()),
  prevHash: z.string().max(128),
  hash: z.string().max(128),
});
export const exportCheckpointLine = z.strictObject({
  type: z.literal('checkpoint'),
  seq: z.number().int(),
  hash: z.string().max(128),
  signature: z.string().max(1024),
  at: z.string().max(64).optional(),
  prevSeq: z.number().int().min(0).optional(),
  prevDigest: z.string().max(128).optional(),
});
export const exportLine = z.discriminatedUnion('type', [exportHeaderLine, exportEventLine, exportCheckpointLine]);
export type ExportLine = z.infer<typeof exportLine>;
