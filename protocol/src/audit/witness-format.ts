import { z } from 'zod';
import { LISTENER_ID_PATTERN } from '../subjects';
import { auditCheckpointSchema } from '../messages/checkpoints';

/*
 * A site's witness copy (`keyhub-listener checkpoints export`): JSON lines,
 * a header naming the listener, the hub fingerprint it pinned at install and
 * the hub key it accepted under that pin, then the hub-signed checkpoints it
 * received, oldest first. `keyhub audit verify --witness` checks the hub's
 * history against it with the site's key, not with whatever key the hub's
 * database holds.
 */
export const WITNESS_EXPORT_VERSION = 1;

export const witnessHeaderLine = z.strictObject({
  type: z.literal('witness'),
  version: z.literal(WITNESS_EXPORT_VERSION),
  listenerId: z.string().regex(LISTENER_ID_PATTERN),
  hubFingerprint: z.string().min(1).max(256),
  /** Base64 DER SPKI of the hub signing key the site holds, whose fingerprint is the pinned one. */
  hubSigningKey: z.string().min(1).max(2048),
  exportedAt: z.string().max(64),
});

export const witnessCheckpointLine = z.strictObject({
  type: z.literal('checkpoint'),
  payload: auditCheckpointSchema,
  signature: z.base64().min(4).max(256),
  receivedAt: z.string().max(64),
});

export const witnessLine = z.discriminatedUnion('type', [witnessHeaderLine, witnessCheckpointLine]);
export type WitnessLine = z.infer<typeof witnessLine>;
export type WitnessCheckpointLine = z.infer<typeof witnessCheckpointLine>;
