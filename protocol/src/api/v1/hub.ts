import { z } from 'zod';

export const hubInfo = z.strictObject({ fingerprint: z.string(), version: z.string() });
export const caBundle = z.strictObject({ rootPem: z.string(), tlsIssuingPem: z.string(), keyIssuingPem: z.string() });
export const healthBody = z.strictObject({ status: z.enum(['ok', 'starting', 'stopping']) });
export type CaBundle = z.infer<typeof caBundle>;
