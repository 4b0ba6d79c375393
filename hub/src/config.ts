import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { hsmConfigSchema, KeyhubError } from '@keyhub/shared';

export const hubConfigSchema = z.strictObject({
  /** What `serve` connects as: the service role, which may only INSERT and SELECT on the audit tables. */
  databaseUrl: z.string().min(1),
  /** What `init` and `migrate` connect as: the owner of the schema. It grants the service role its rights. */
  ownerDatabaseUrl: z.string().min(1).optional(),
  nats: z.strictObject({
    servers: z.array(z.string().min(1)).min(1),
    name: z.string().default('keyhub-hub'),
    /** JetStream stream replicas: 1 on a single server, 3 on a three-node cluster. */
    replicas: z.number().int().min(1).max(5).default(1),
    /** 'jwt': the hub connects as its own NATS user and keeps the account current (see `keyhub-server nats-config`); 'none' only for a server without auth. */
    auth: z.enum(['jwt', 'none']).default('jwt'),
    /** TLS to the NATS servers, their certificates checked against the hub CA root (or caFile). */
    tls: z.boolean().default(true),
    caFile: z.string().min(1).optional(),
    /** Deliveries of one package to a listener; the listener reports the last one it cannot process as a failed receipt. */
    maxDeliver: z.number().int().min(2).max(1000).default(10),
    /** Deliveries of one listener message to the hub before it is left to the package re-send. */
    upMaxDeliver: z.number().int().min(2).max(10_000).default(50),
    /** Lifetime of the bootstrap credential `keyhub listener register` hands out, unless the request names one. */
    bootstrapTtlSeconds: z
      .number()
      .int()
      .min(60)
      .max(90 * 86_400)
      .default(7 * 86_400),
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
  /** Checkpoint interval: it bounds the events no site has witnessed yet. */
  audit: z.strictObject({ checkpointEverySeconds: z.number().int().min(1).default(30) }).prefault({}),
  /** The operators' HTTPS API (`keyhub serve`). */
  api: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65_535).default(8443),
      /** Names and addresses the server certificate is issued for (the hub CA issues it at start). */
      hostnames: z.array(z.string().min(1).max(253)).max(32).default(['localhost']),
      ipAddresses: z.array(z.ipv4().or(z.ipv6())).max(32).default(['127.0.0.1']),
      /** An existing certificate chain and key (PEM files) instead of one issued by the hub CA at start. */
      tlsCertFile: z.string().min(1).optional(),
      tlsKeyFile: z.string().min(1).optional(),
      /** Largest request body; bulk `distribute` bodies are the largest (about 60 bytes per key). */
      maxBodyBytes: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(8 * 1024 * 1024),
      /** Requests per credential (or per address without one) and window. */
      rateLimit: z.strictObject({ max: z.number().int().min(1).default(600), windowSeconds: z.number().int().min(1).default(60) }).prefault({}),
      /** Default lifetime of tokens created without one. */
      tokenTtlSeconds: z
        .number()
        .int()
        .min(60)
        .max(366 * 86_400)
        .default(30 * 86_400),
    })
    .prefault({}),
  /**
   * The hub CA: token labels of its key pairs, and optionally an existing CA
   * (PEM files) whose two intermediates certify the hub's issuing keys, instead
   * of a root the hub makes itself.
   */
  ca: z
    .strictObject({
      keyLabels: z.strictObject({ root: z.string().min(1).optional(), tlsIssuing: z.string().min(1).optional(), keyIssuing: z.string().min(1).optional() }).optional(),
      external: z.strictObject({ rootFile: z.string().min(1), tlsIssuingFile: z.string().min(1), keyIssuingFile: z.string().min(1) }).optional(),
    })
    .prefault({}),
  approvals: z
    .strictObject({
      /** A request not executed within this time expires. */
      requestTtlSeconds: z.number().int().min(1).default(86_400),
      /** An approval counts for this long; after that the approver must approve again. */
      approvalTtlSeconds: z
        .number()
        .int()
        .min(1)
        .default(8 * 3600),
    })
    .prefault({}),
  /** How often each replica runs the key lifecycle's scheduled transitions (activation, deactivation, rotation): it bounds their delay. */
  keyLifecycle: z.strictObject({ intervalMs: z.number().int().min(100).max(3_600_000).default(5_000) }).prefault({}),
  /** Distribution policies: how often they are reconciled, and how often every site's inventory is scanned for drift (a site is also scanned whenever its inventory arrives). */
  placements: z
    .strictObject({
      reconcileSeconds: z.number().int().min(1).max(86_400).default(30),
      driftScanSeconds: z.number().int().min(1).max(86_400).default(300),
    })
    .prefault({}),
  dbPoolSize: z.number().int().min(1).max(100).default(10),
});
export type HubConfig = z.infer<typeof hubConfigSchema>;

/**
 * Reads the JSON config file, then applies environment overrides
 * (KEYHUB_DATABASE_URL, KEYHUB_OWNER_DATABASE_URL, KEYHUB_NATS_URL as a comma-separated list).
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
  if (process.env.KEYHUB_OWNER_DATABASE_URL) obj.ownerDatabaseUrl = process.env.KEYHUB_OWNER_DATABASE_URL;
  if (process.env.KEYHUB_NATS_URL) obj.nats = { ...(obj.nats as object), servers: process.env.KEYHUB_NATS_URL.split(',') };
  const parsed = hubConfigSchema.safeParse(obj);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new KeyhubError('CONFIG_INVALID', `invalid hub configuration ${file}: ${issues}`);
  }
  return parsed.data;
}
