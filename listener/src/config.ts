import { chmodSync, lstatSync, mkdirSync, statSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { LISTENER_ID_PATTERN } from '@keyhub/protocol';
import { hsmConfigSchema, KeyhubError, NOT_OWNER_ONLY, type Logger } from '@keyhub/shared';

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

export const listenerConfigSchema = z.strictObject({
  id: z.string().regex(LISTENER_ID_PATTERN),
  /** caFile: the hub CA root the NATS servers' certificates are checked against (TLS is then required). */
  nats: z.strictObject({ servers: z.array(z.string().min(1)).min(1), caFile: z.string().min(1).optional() }),
  /** Fingerprint of the hub signing key, pinned at install time and compared out of band. */
  hubFingerprint: z.string().min(16),
  hsm: hsmConfigSchema,
  targets: z
    .array(pkcs11TargetSchema)
    .min(1)
    .refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, 'target names must be unique')
    .refine((ts) => ts.some((t) => !t.hsm), "one target at least is the listener's own token (no hsm): it is what enrollment reports")
    .refine(
      (ts) => ts.every((t) => t.hsm?.tokenLabel === undefined || ts.filter((u) => u.hsm?.tokenLabel === t.hsm?.tokenLabel && u.hsm?.module === t.hsm?.module).length === 1),
      'one target per token',
    ),
  heartbeatSeconds: z.number().int().min(1).default(10),
  /** A signed inventory of the targets goes to the hub on start and this often (listener/src/inventory). */
  inventorySeconds: z.number().int().min(1).max(86_400).default(300),
  /** Packages imported at once; a token persists several keys in parallel far faster than in turn. Keep hsm.sessions at least this. */
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
