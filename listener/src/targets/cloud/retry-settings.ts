import { z } from 'zod';
import { DEFAULT_RETRY } from './retry';

export const retrySettings = z
  .strictObject({
    attempts: z.number().int().min(1).max(20),
    baseDelayMs: z.number().int().min(0).max(60_000),
    maxDelayMs: z.number().int().min(0).max(600_000),
  })
  .default(DEFAULT_RETRY);
