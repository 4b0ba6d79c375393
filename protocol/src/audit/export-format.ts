import { z } from 'zod';

/*
 * The audit export: JSON lines, a header with the hub signing key, the events
 * in sequence order, then the checkpoints. Line-oriented so that it can be
 * streamed both ways and inspected with grep and jq. A verifier never trusts
 * the header's key alone: it checks it against a fingerprint it pinned.
 */
/** 2: checkpoints carry their chain link (at, prevSeq, prevDigest); version 1 files are still read. */
export const AUDIT_EXPORT_VERSION = 2;
export const exportHeaderLine = z.strictObject({
  type: z.literal('header'),
  hubSigningKey: z.string().min(1).max(2048),
  fingerprint: z.string().max(256),
  version: z.union([z.literal(1), z.literal(AUDIT_EXPORT_VERSION)]).optional(),
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
