import type { Command } from 'commander';
import type { DataSource } from 'typeorm';
import { createLogger, KeyhubError, type Logger } from '@keyhub/shared';
import { loadHubConfig, type HubConfig } from '../config';
import { openHubRuntime, type HubRuntime } from '../container';
import { hubSchemaPresent } from '../store/queries/health';

export interface AdminOptions {
  config?: string;
  json: boolean;
}

export function adminOptions(cmd: Command): AdminOptions {
  const o = cmd.optsWithGlobals<{ config?: string; json?: boolean }>();
  return { config: o.config, json: o.json === true };
}

/** One-shot commands log only warnings by default: their result is the output. KEYHUB_LOG_LEVEL overrides. */
export function adminLogger(defaultLevel: string): Logger {
  return createLogger('keyhub-hub', process.env.KEYHUB_LOG_LEVEL ?? defaultLevel);
}

function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

/** A database opened by someone else's tooling has no keyhub tables; saying so beats "relation does not exist". */
async function assertSchema(ds: DataSource): Promise<void> {
  if (!(await hubSchemaPresent(ds))) throw new KeyhubError('NOT_INITIALIZED', 'database holds no keyhub schema: run `keyhub init`');
}

/** Opens HSM and database, runs the work, and closes both whatever happens. */
export async function withRuntime<T>(
  o: AdminOptions,
  work: (rt: HubRuntime, config: HubConfig) => Promise<T>,
  options: { requireKeyring?: boolean; logLevel?: string; databaseRole?: 'service' | 'owner' } = {},
): Promise<T> {
  const config = loadHubConfig(o.config);
  const logger = adminLogger(options.logLevel ?? 'warn');
  try {
    const rt = await openHubRuntime(config, { requireKeyring: options.requireKeyring, logger, databaseRole: options.databaseRole });
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

/** Resolves with the first SIGINT or SIGTERM; a second one means "stop waiting for a clean shutdown". */
export function shutdownSignal(onSecond: (signal: NodeJS.Signals) => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) onSecond(signal);
      received = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
