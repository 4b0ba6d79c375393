import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { LISTENER_ID_PATTERN } from '@keyhub/protocol';
import { hsmConfigSchema, KeyhubError } from '@keyhub/shared';

const pkcs11TargetSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  kind: z.literal('pkcs11'),
  /** Prefix of CKA_LABEL for imported keys: `<prefix><key name>.v<version>`. */
  labelPrefix: z.string().max(32).default(''),
});

export const listenerConfigSchema = z.strictObject({
  id: z.string().regex(LISTENER_ID_PATTERN),
  nats: z.strictObject({ servers: z.array(z.string().min(1)).min(1) }),
  /** Fingerprint of the hub signing key, pinned at install time and compared out of band. */
  hubFingerprint: z.string().min(16),
  hsm: hsmConfigSchema,
  targets: z.array(pkcs11TargetSchema).min(1),
  heartbeatSeconds: z.number().int().min(1).default(10),
  /** Packages imported at once; a token persists several keys in parallel far faster than in turn. Keep hsm.sessions at least this. */
  importConcurrency: z.number().int().min(1).max(32).default(4),
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
  if (process.env.KEYHUB_NATS_URL) obj.nats = { servers: process.env.KEYHUB_NATS_URL.split(',') };
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
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const tmp = `${configPath(home)}.tmp`;
  writeFileSync(tmp, JSON.stringify(parsed.data, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, configPath(home));
  return parsed.data;
}
