import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { DataSource } from 'typeorm';
import { createLogger, KeyhubError, type Logger } from '@keyhub/shared';
import { loadHubConfig, type HubConfig } from '../config';
import { openHubRuntime, type HubRuntime } from '../container';
import { connectDataSource } from '../store/data-source';

export interface GlobalOptions {
  config?: string;
  json: boolean;
  actor: string;
}

/** The audit trail names a person; a login name is the best guess when none is given. */
export function defaultActor(): string {
  if (process.env.KEYHUB_ACTOR) return process.env.KEYHUB_ACTOR;
  try {
    return userInfo().username;
  } catch {
    // Containers often run under a uid without a passwd entry.
    return typeof process.getuid === 'function' ? `uid:${process.getuid()}` : 'unknown';
  }
}

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ config?: string; json?: boolean; actor?: string }>();
  const actor = (o.actor ?? defaultActor()).trim();
  if (!actor) throw new KeyhubError('INPUT_INVALID', '--actor must not be empty');
  return { config: o.config, json: o.json === true, actor };
}

/**
 * One-shot commands log only warnings by default: their result is the
 * output, and info lines on stderr would bury it. KEYHUB_LOG_LEVEL overrides.
 */
function cliLogger(defaultLevel: string): Logger {
  return createLogger('keyhub-hub', process.env.KEYHUB_LOG_LEVEL ?? defaultLevel);
}

function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

/**
 * A database opened by someone else's tooling, or by a token initialized
 * against another database, has no keyhub tables; saying so beats a raw
 * "relation does not exist".
 */
async function assertSchema(ds: DataSource): Promise<void> {
  const [row] = await ds.query(`SELECT to_regclass('hub_identity') IS NOT NULL AS present`);
  if (!row?.present) throw new KeyhubError('NOT_INITIALIZED', 'database holds no keyhub schema: run `keyhub init`');
}

export interface RuntimeOptions {
  /** false only for `keyhub init`, which creates the keyring. */
  requireKeyring?: boolean;
  logLevel?: string;
}

/** Opens HSM and database, runs the work, and closes both whatever happens. */
export async function withRuntime<T>(g: GlobalOptions, work: (rt: HubRuntime, config: HubConfig) => Promise<T>, options: RuntimeOptions = {}): Promise<T> {
  const config = loadHubConfig(g.config);
  const logger = cliLogger(options.logLevel ?? 'warn');
  try {
    const rt = await openHubRuntime(config, { requireKeyring: options.requireKeyring, logger });
    try {
      if (options.requireKeyring !== false) await assertSchema(rt.ds);
      return await work(rt, config);
    } finally {
      await rt.close();
    }
  } finally {
    await flushLogger(logger);
  }
}

/**
 * Without a config file, KEYHUB_DATABASE_URL alone is enough: auditors get
 * read access to the database, not an HSM configuration.
 */
function auditDatabaseUrl(g: GlobalOptions): string {
  if (g.config === undefined && !process.env.KEYHUB_CONFIG && process.env.KEYHUB_DATABASE_URL) return process.env.KEYHUB_DATABASE_URL;
  return loadHubConfig(g.config).databaseUrl;
}

/** The database alone, no HSM: for commands that only read (audit verify and export). */
export async function withDatabase<T>(g: GlobalOptions, work: (ds: DataSource) => Promise<T>): Promise<T> {
  const ds = await connectDataSource(auditDatabaseUrl(g), 2);
  try {
    await assertSchema(ds);
    return await work(ds);
  } finally {
    await ds.destroy().catch(() => undefined);
  }
}
