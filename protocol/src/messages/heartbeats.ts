import { z } from 'zod';
import { LIMITS } from '../limits';
import { listenerId, MESSAGE_TYPES, name, timestamp, uuid } from './common';

export const heartbeatSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.heartbeat),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  targets: z.array(z.strictObject({ name, healthy: z.boolean(), detail: z.string().max(LIMITS.maxTextChars).optional() })).max(LIMITS.maxTargets),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

