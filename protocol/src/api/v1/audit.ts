import { z } from 'zod';
import { sha256Hex, timestamp } from './common';

export const auditEventView = z.strictObject({
  seq: z.number().int().min(1),
  at: timestamp,
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  details: z.record(z.string(), z.unknown()),
  prevHash: sha256Hex,
  hash: sha256Hex,
});
export type AuditEventView = z.infer<typeof auditEventView>;
export const auditEventsQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
  /** Only events dated at or after this time: to find where a period starts (`keyhub audit export --from <time>`); such a page is not a contiguous chain. */
  since: timestamp.optional(),
});
export const auditEventsPage = z.strictObject({ events: z.array(auditEventView), next: z.number().int().nullable() });

export const checkpointView = z.strictObject({
  seq: z.number().int().min(1),
  hash: sha256Hex,
  signature: z.string(),
  /** The checkpoint chain (absent on checkpoints made before it existed): when signed, and the previous checkpoint's event and digest. */
  at: timestamp.optional(),
  prevSeq: z.number().int().min(0).optional(),
  prevDigest: sha256Hex.optional(),
});
export const checkpointList = z.strictObject({
  checkpoints: z.array(checkpointView),
  /** The hub signing key as stored (base64 DER SPKI): a verifier checks it against a pinned fingerprint, never trusts it alone. */
  signingKey: z.string(),
  fingerprint: z.string(),
});
export const checkpointResult = z.strictObject({ checkpoint: checkpointView.nullable() });
