import { z } from 'zod';
import { listenerId, timestamp, uuid, kcv } from './common';

export const listenerView = z.strictObject({
  id: listenerId,
  state: z.string(),
  fingerprint: z.string(),
  targets: z.array(z.string()),
  hostname: z.string().nullable(),
  requestedAt: timestamp,
  activatedAt: timestamp.nullable(),
  lastSeenAt: timestamp.nullable(),
  backlog: z.number().int().min(0),
});
export type ListenerView = z.infer<typeof listenerView>;
export const listenerList = z.strictObject({ listeners: z.array(listenerView) });
export const listenerParams = z.strictObject({ id: listenerId });

/** The fingerprint as the operator read it at the site; case and separators are ignored. */
export const approveListenerBody = z.strictObject({ fingerprint: z.string().min(16).max(256) });
export const approveListenerResult = z.strictObject({ listenerId, kekId: uuid, kcv });
