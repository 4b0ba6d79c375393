import { chmodSync, lstatSync, mkdirSync, statSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { LISTENER_ID_PATTERN } from '@keyhub/protocol';
import { hsmConfigSchema, KeyhubError, NOT_OWNER_ONLY, type Logger } from '@keyhub/shared';
import { awsKmsSettings } from './targets/cloud/aws/aws-settings';
import { azureKeyVaultSettings } from './targets/cloud/azure/azure-settings';
import { gcpKmsSettings } from './targets/cloud/gcp/gcp-settings';
import { KEYSTORE_DEFAULTS, MAX_ITERATIONS } from './targets/keystore/keystore-types';

/**
 * A PKCS#11 target. Without `hsm` it is the listener's own token (where the
 * root KEK lives, as before). With `hsm` it is another token, possibly
 * behind another module, with a KEK of its own installed in it (issue 12):
 * its module path, token label, PIN source (`pinEnv` or `pinFile`; a file
 * must be owner-only, shared/src/secrets.ts) and mechanism profile are its
 * own. The profile: `hsm.kwpMechanism` (0x210A SoftHSM2, 0x210B PKCS#11
 * 3.x) for the key packages, `oaepHash` and `transportKeyBits` for the
 * RSA-OAEP install of its KEK (SoftHSM2 does OAEP with SHA-1 only).
 */
const pkcs11TargetSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  kind: z.literal('pkcs11'),
  /** Prefix of CKA_LABEL for imported keys: `<prefix><key name>.v<version>`. */
  labelPrefix: z.string().max(32).default(''),
  hsm: hsmConfigSchema.optional(),
  oaepHash: z.enum(['sha1', 'sha256']).default('sha1'),
  transportKeyBits: z.number().int().min(2048).max(4096).default(3072),
});

/**
 * Where a target's secret comes from: an environment variable (`env`, its
 * name) or an owner-only file (`file`), never the configuration itself, so
 * listener.json can be read, backed up and diffed without exposing one.
 * Read with shared/src/secrets.ts (a file readable by others is refused).
 */
export const secretSourceSchema = z
  .strictObject({
    env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/)
      .optional(),
    file: z.string().min(1).max(4096).optional(),
  })
  .refine((s) => s.env !== undefined || s.file !== undefined, 'a secret comes from `env` (a variable name) or `file` (an owner-only file)');
export type SecretSourceConfig = z.infer<typeof secretSourceSchema>;

/**
 * What every target that needs its keys outside a token (keystore, cloud)
 * shares: the transit KEK it imports under is installed in the listener's
 * own token by the target-KEK exchange (`keyhub-listener target request`),
 * wrapped with RSA-OAEP to a transport key of this size and hash.
 */
const transitFields = {
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  oaepHash: z.enum(['sha1', 'sha256']).default('sha1'),
  transportKeyBits: z.number().int().min(2048).max(4096).default(3072),
};

const iterations = (d: number) => z.number().int().min(1).max(MAX_ITERATIONS).default(d);

/**
 * A Java keystore file (listener/src/targets/keystore-target.ts). `type`:
 * pkcs12 (Java's default) or jceks. The store password comes from `password`
 * (env or owner-only file); the PBE iteration counts default to
 * KEYSTORE_DEFAULTS (PKCS#12: Java 17's 10,000; JCEKS: 10,000, not Java's
 * 200,000, see keystore-types.ts). The file is written 0600, its previous
 * version kept as `<path>.bak`.
 */
const keystoreTargetSchema = z.strictObject({
  ...transitFields,
  kind: z.literal('keystore'),
  type: z.enum(['pkcs12', 'jceks']).default('pkcs12'),
  path: z
    .string()
    .min(2)
    .max(4096)
    .refine((p) => p.startsWith('/'), 'an absolute path'),
  password: secretSourceSchema,
  pkcs12KeyIterations: iterations(KEYSTORE_DEFAULTS.pkcs12KeyIterations),
  pkcs12MacIterations: iterations(KEYSTORE_DEFAULTS.pkcs12MacIterations),
  jceksIterations: iterations(KEYSTORE_DEFAULTS.jceksIterations),
  /** Imports this keystore takes at once, beyond importConcurrency (a rewrite takes half); default from the PBE cost, keystoreImportSlots(). */
  importSlots: z.number().int().min(1).max(256).optional(),
});

/**
 * Cloud KMS targets (listener/src/targets/cloud-target.ts): each cloud's
 * settings as its importer takes them (listener/src/targets/cloud/*), with
 * the credentials' secrets as secret sources. `platform` (AWS provider
 * chain), `managed-identity` / `workload-identity` (Azure) and `platform`
 * (Google ADC) need no stored secret at all.
 */
const awsTargetSchema = awsKmsSettings.omit({ credentials: true }).extend({
  ...transitFields,
  kind: z.literal('aws-kms'),
  credentials: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('static'), accessKeyId: secretSourceSchema, secretAccessKey: secretSourceSchema, sessionToken: secretSourceSchema.optional() }),
    z.strictObject({ kind: z.literal('platform') }),
  ]),
});

const azureTargetSchema = azureKeyVaultSettings.omit({ credentials: true }).extend({
  ...transitFields,
  kind: z.literal('azure-kv'),
  credentials: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('managed-identity'), clientId: z.string().max(64).optional() }),
    z.strictObject({ kind: z.literal('workload-identity') }),
    z.strictObject({ kind: z.literal('client-secret'), tenantId: z.string().min(1).max(64), clientId: z.string().min(1).max(64), clientSecret: secretSourceSchema }),
    z.strictObject({ kind: z.literal('static-token'), token: secretSourceSchema }),
  ]),
});

const gcpTargetSchema = gcpKmsSettings.omit({ credentials: true }).extend({
  ...transitFields,
  kind: z.literal('gcp-kms'),
  credentials: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('platform') }),
    z.strictObject({ kind: z.literal('service-account'), clientEmail: z.string().min(1).max(256), privateKey: secretSourceSchema }),
    z.strictObject({ kind: z.literal('static-token'), token: secretSourceSchema }),
  ]),
});

/**
 * A payment HSM taking TR-31 key blocks (listener/src/targets/tr31-target.ts):
 * its API endpoint, the block version (D: AES KBPK; B: TDES KBPK) and the
 * SHA-256 of its RSA transport key (DER SPKI, hex), pinned here and checked
 * before the KBPK is sent to it. `kbpkOaepHash` wraps the KBPK to that key.
 */
const tr31TargetSchema = z.strictObject({
  ...transitFields,
  kind: z.literal('tr31'),
  endpoint: z.string().url().max(2048),
  version: z.enum(['D', 'B']).default('D'),
  transportKeyFingerprint: z.string().regex(/^(sha256:)?[0-9a-fA-F]{64}$/, 'SHA-256 of the transport key (DER SPKI), 64 hex digits'),
  kbpkOaepHash: z.enum(['sha1', 'sha256']).default('sha1'),
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
});

const targetSchema = z.discriminatedUnion('kind', [pkcs11TargetSchema, keystoreTargetSchema, awsTargetSchema, azureTargetSchema, gcpTargetSchema, tr31TargetSchema]);

export const listenerConfigSchema = z.strictObject({
  id: z.string().regex(LISTENER_ID_PATTERN),
  /** caFile: the hub CA root the NATS servers' certificates are checked against (TLS is then required). */
  nats: z.strictObject({ servers: z.array(z.string().min(1)).min(1), caFile: z.string().min(1).optional() }),
  /** Fingerprint of the hub signing key, pinned at install time and compared out of band. */
  hubFingerprint: z.string().min(16),
  hsm: hsmConfigSchema,
  targets: z
    .array(targetSchema)
    .min(1)
    .refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, 'target names must be unique')
    .refine((ts) => ts.some((t) => !hsmOf(t)), "one target at least is not a token of its own (the listener's own token, a keystore, a cloud): it is what enrollment reports")
    .refine(
      (ts) => ts.every((t) => hsmOf(t)?.tokenLabel === undefined || ts.filter((u) => hsmOf(u)?.tokenLabel === hsmOf(t)?.tokenLabel && hsmOf(u)?.module === hsmOf(t)?.module).length === 1),
      'one target per token',
    )
    .refine((ts) => {
      const paths = ts.flatMap((t) => (t.kind === 'keystore' ? [t.path] : []));
      return new Set(paths).size === paths.length;
    }, 'one target per keystore file: a listener owns the files it writes'),
  heartbeatSeconds: z.number().int().min(1).default(10),
  /** A signed inventory of the targets goes to the hub on start and this often (listener/src/inventory). */
  inventorySeconds: z.number().int().min(1).max(86_400).default(300),
  /**
   * Packages imported at once into PKCS#11 and cloud targets; a token persists several keys in parallel far faster than in
   * turn. Keep hsm.sessions at least this. Keystore targets have slots of their own (`importSlots`, default 128 for PKCS#12),
   * which the consumer takes on top of this (listener/src/targets/import-slots.ts).
   */
  importConcurrency: z.number().int().min(1).max(32).default(4),
  /**
   * Deliveries of one message before it is given up; keep it equal to the
   * hub's consumer `max_deliver` (hub config `nats.maxDeliver`, 10). On the
   * last one, a package that still cannot be processed for a passing reason
   * (HSM, bus) ends with a failed receipt carrying that code and is
   * terminated, so it is not delivered again.
   */
  maxDeliver: z.number().int().min(1).max(1000).default(10),
  oaepHash: z.enum(['sha1', 'sha256']).default('sha1'),
  transportKeyBits: z.number().int().min(2048).max(4096).default(3072),
});
export type ListenerConfig = z.infer<typeof listenerConfigSchema>;
export type ListenerConfigInput = z.input<typeof listenerConfigSchema>;
export type TargetConfig = ListenerConfig['targets'][number];
export type Pkcs11TargetConfig = Extract<TargetConfig, { kind: 'pkcs11' }>;
export type KeystoreTargetConfig = Extract<TargetConfig, { kind: 'keystore' }>;
export type CloudTargetConfig = Extract<TargetConfig, { kind: 'aws-kms' | 'azure-kv' | 'gcp-kms' }>;
export type Tr31TargetConfig = Extract<TargetConfig, { kind: 'tr31' }>;

/** The token of its own a PKCS#11 target names, if any (keystore and cloud targets have none). */
export function hsmOf(t: { kind: string; hsm?: unknown }): z.infer<typeof hsmConfigSchema> | undefined {
  return t.kind === 'pkcs11' ? (t.hsm as z.infer<typeof hsmConfigSchema> | undefined) : undefined;
}

export function listenerHome(explicit?: string): string {
  return explicit ?? process.env.KEYHUB_LISTENER_HOME ?? join(homedir(), '.keyhub-listener');
}

export const configPath = (home: string): string => join(home, 'listener.json');

export function loadListenerConfig(home: string): ListenerConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath(home), 'utf8'));
  } catch (err) {
    throw new KeyhubError('CONFIG_INVALID', `no listener configuration in ${home}: run \`keyhub-listener init\``, { cause: err });
  }
  const obj = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  if (process.env.KEYHUB_NATS_URL) obj.nats = { ...(obj.nats as object), servers: process.env.KEYHUB_NATS_URL.split(',') };
  const parsed = listenerConfigSchema.safeParse(obj);
  if (!parsed.success) {
    throw new KeyhubError('CONFIG_INVALID', `invalid listener configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

export function saveListenerConfig(home: string, input: ListenerConfigInput): ListenerConfig {
  const parsed = listenerConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new KeyhubError('INPUT_INVALID', `invalid listener configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  secureHome(home);
  const tmp = `${configPath(home)}.tmp`;
  writeFileSync(tmp, JSON.stringify(parsed.data, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, configPath(home));
  return parsed.data;
}

/**
 * Keeps the listener home owner-only (created 0700), and its files
 * owner-only: it holds the journal, the pinned hub key, the NATS seed. A
 * missing home is created 0700. A home (or a file in it) this user owns but
 * others can read or enter is FIXED, not refused: the mode is tightened and
 * a warning names the mode found, because the files in it were written
 * owner-only in the first place, and a site should not stay down over a mode
 * bit a volume mount or a package script set. A home or file owned by
 * another user cannot be fixed or trusted, and is refused
 * (SECRET_FILE_PERMISSIONS).
 */
export function secureHome(home: string, logger?: Pick<Logger, 'warn'>): void {
  // mode is masked by the umask: set it outright on a home made here.
  if (mkdirSync(home, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(home, 0o700);
  const uid = process.getuid?.();
  const fix = (path: string, what: string, follow = false): void => {
    // The home itself may be reached through a link (a mounted volume); the files in it may not.
    const st = follow ? statSync(path) : lstatSync(path);
    if (st.isSymbolicLink()) throw new KeyhubError('SECRET_FILE_PERMISSIONS', `${what} ${path} is a symbolic link; the listener home must hold its own files`);
    if (uid !== undefined && st.uid !== uid) {
      throw new KeyhubError('SECRET_FILE_PERMISSIONS', `${what} ${path} belongs to uid ${st.uid}, not to this user (${uid}); it must be owned by the listener's user`);
    }
    if ((st.mode & NOT_OWNER_ONLY) !== 0) {
      // The owner's bits stay as they were; group and other lose theirs.
      const wanted = st.mode & 0o700;
      chmodSync(path, wanted);
      logger?.warn({ path, found: (st.mode & 0o777).toString(8).padStart(4, '0'), now: wanted.toString(8).padStart(4, '0') }, `${what} was accessible to others; tightened`);
    }
  };
  fix(home, 'listener home', true);
  for (const entry of readdirSync(home, { withFileTypes: true })) {
    if (entry.isFile()) fix(join(home, entry.name), 'file in the listener home');
  }
}
