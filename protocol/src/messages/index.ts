import { z } from 'zod';
import { enrollmentRequestSchema, rootKekConfirmSchema, rootKekSchema } from './enrollment';
import { auditCheckpointSchema } from './checkpoints';
import { heartbeatSchema } from './heartbeats';
import { natsCredentialsSchema } from './nats-credentials';
import { keyPackageSchema } from './packages';
import { receiptSchema } from './receipts';
import { rootKekRotationSchema } from './root-kek-rotation';
import { rootKekCeremonySchema } from './root-kek-ceremony';
import { commandReceiptSchema, keyCommandSchema } from './key-commands';
import { inventoryReportSchema } from './inventory';
import { targetKekConfirmSchema, targetKekRequestSchema, targetKekRotationSchema, targetKekSchema, targetUpdateSchema } from './target-keks';

export * from './common';
export * from './key-algorithms';
export * from './enrollment';
export * from './packages';
export * from './receipts';
export * from './heartbeats';
export * from './checkpoints';
export * from './nats-credentials';
export * from './root-kek-rotation';
export * from './root-kek-ceremony';
export * from './key-commands';
export * from './inventory';
export * from './target-keks';

/* Every message family has its own file; a new family joins the union here (and the fuzz tests and NATS permission matrix). */
export const messageSchema = z.discriminatedUnion('type', [
  enrollmentRequestSchema,
  rootKekSchema,
  rootKekConfirmSchema,
  rootKekRotationSchema,
  rootKekCeremonySchema,
  keyPackageSchema,
  receiptSchema,
  heartbeatSchema,
  auditCheckpointSchema,
  natsCredentialsSchema,
  keyCommandSchema,
  commandReceiptSchema,
  inventoryReportSchema,
  targetKekRequestSchema,
  targetKekSchema,
  targetKekConfirmSchema,
  targetKekRotationSchema,
  targetUpdateSchema,
]);
export type Message = z.infer<typeof messageSchema>;
export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;
