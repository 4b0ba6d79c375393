import { z } from 'zod';
import { positiveInt, timestamp } from './common';

/** Type of a signed audit checkpoint: stored by the hub, witnessed by every active listener. */
export const AUDIT_CHECKPOINT_TYPE = 'keyhub.v1.audit_checkpoint' as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * A checkpoint of the hub's audit chain, signed (ES256) by the hub signing
 * key in its HSM. It names the chain's head (`seq`, `hash`) and the previous
 * checkpoint (`prevSeq`, `prevDigest`: the event it covered and the SHA-256
 * of its canonical bytes; 0 and 64 zeros for the first), so checkpoints form
 * a chain of their own: dropping or replacing one breaks the next link.
 * The payload is the whole statement, the same bytes in the database, on
 * the wire and in a site's witness file; it names no listener because it is
 * a statement about the hub's history, valid to anyone holding the hub key.
 */
export const auditCheckpointSchema = z.strictObject({
  type: z.literal(AUDIT_CHECKPOINT_TYPE),
  seq: positiveInt,
  hash: sha256Hex,
  at: timestamp,
  prevSeq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  prevDigest: sha256Hex,
});
export type AuditCheckpointMessage = z.infer<typeof auditCheckpointSchema>;
