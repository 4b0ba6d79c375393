import { z } from 'zod';
import { enrollmentRequestSchema, rootKekConfirmSchema, rootKekSchema } from './enrollment';
import { auditCheckpointSchema } from './checkpoints';
import { heartbeatSchema } from './heartbeats';
import { natsCredentialsSchema } from './nats-credentials';
import { keyPackageSchema } from './packages';
import { receiptSchema } from './receipts';

export * from './common';
export * from './enrollment';
export * from './packages';
export * from './receipts';
export * from './heartbeats';
export * from './checkpoints';
export * from './nats-credentials';

/* Every message family has its own file; a new family joins the union here (and the fuzz tests and NATS permission matrix). */
export const messageSchema = z.discriminatedUnion('type', [
  enrollmentRequestSchema,
  rootKekSchema,
  rootKekConfirmSchema,
  keyPackageSchema,
  receiptSchema,
  heartbeatSchema,
  auditCheckpointSchema,
  natsCredentialsSchema,
]);
export type Message = z.infer<typeof messageSchema>;
export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;
