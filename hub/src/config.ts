import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { hsmConfigSchema, KeyhubError } from '@keyhub/shared';

export const hubConfigSchema = z.strictObject({
  databaseUrl: z.string().min(1),
  nats: z.strictObject({
    servers: z.array(z.string().min(1)).min(1),
    name: z.string().default('keyhub-hub'),
    /** JetStream stream replicas: 1 on a single server, 3 on a three-node cluster. */
    replicas: z.number().int().min(1).max(5).default(1),
  }),
  hsm: hsmConfigSchema,
  delivery: z
    .strictObject({
      /** Lifetime of a key package; the listener rejects it afterwards. */
      packageTtlSeconds: z.number().int().min(10).default(86_400),
      /** A sent package without a receipt is issued again after this long (doubling per attempt). */
      resendAfterSeconds: z.number().int().min(1).default(30),
      /** Attempts before a distribution ends as failed. */
      maxAttempts: z.number().int().min(1).default(5),
      /** A listener heard from within this window counts as online (resends go only to online listeners). */
      onlineWindowSeconds: z.number().int().min(1).default(60),
      relayBatch: z.number().int().min(1).max(10_000).default(256),
      /** Most packages per chunk of a Distribute call (one transaction and one HSM batch signature each). */
      issueBatch: z.number().int().min(1).max(10_000).default(1000),
    })
    .prefault({}),
  audit: z.strictObject({ checkpointEverySeconds: z.number().int().min(1).default(60) }).prefault({}),
  dbPoolSize: z.number().int().min(1).max(100).default(10),
});
export type HubConfig = z.infer<typeof hubConfigSchema>;

/**
 * Reads the JSON config file, then applies environment overrides
 * (KEYHUB_DATABASE_URL, KEYHUB_NATS_URL as a comma-separated list).
 */
export function loadHubConfig(path: string | undefined): HubConfig {
  const file = path ?? process.env.KEYHUB_CONFIG;
  if (!file) throw new KeyhubError('CONFIG_INVALID', 'no hub configuration: pass --config or set KEYHUB_CONFIG');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KeyhubError('CONFIG_INVALID', `cannot read hub configuration ${file}`, { cause: err });
  }
  const obj = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  if (process.env.KEYHUB_DATABASE_URL) obj.databaseUrl = process.env.KEYHUB_DATABASE_URL;
  if (process.env.KEYHUB_NATS_URL) obj.nats = { ...(obj.nats as object), servers: process.env.KEYHUB_NATS_URL.split(',') };
  const parsed = hubConfigSchema.safeParse(obj);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new KeyhubError('CONFIG_INVALID', `invalid hub configuration ${file}: ${issues}`);
  }
  return parsed.data;
}
