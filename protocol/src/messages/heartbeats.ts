import { z } from 'zod';
import { LIMITS } from '../limits';
import { freeText, listenerId, MESSAGE_TYPES, name, positiveInt, timestamp, uuid } from './common';

/**
 * A signed "still alive". `issuedAt` and `sequence` make a captured copy
 * worthless later: the hub refuses one outside its freshness window, or whose
 * sequence is not greater than the last it accepted from that listener. The
 * listener keeps the sequence strictly increasing across restarts.
 */
export const heartbeatSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.heartbeat),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  sequence: positiveInt,
  targets: z.array(z.strictObject({ name, healthy: z.boolean(), detail: freeText(LIMITS.maxTextChars).optional() })).max(LIMITS.maxTargets),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;
