#!/usr/bin/env node
import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { EXIT } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { registerInitCommand } from './admin/init';
import { flushStdio, printError, printJson } from './admin/output';
import { registerServeCommand } from './admin/serve';
import { registerNatsConfigCommand } from './admin/nats-config';
import { registerNatsCredsCommand } from './admin/nats-creds';

/**
 * `keyhub-server`: what runs beside the database and the hub HSM (init,
 * serve, migrate). Operators use the `keyhub` client and the API for
 * everything else; `keyhub init|serve|migrate` hand over to this.
 */
export function buildProgram(): Command {
  const program = new Command('keyhub-server')
    .description('Keyhub hub server: init, serve, migrate (needs the database and the hub HSM)')
    .option('--config <file>', 'hub configuration (JSON); default: $KEYHUB_CONFIG')
    .option('--json', 'print results as JSON, one document per line')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  registerInitCommand(program);
  registerServeCommand(program);
  registerNatsConfigCommand(program);
  registerNatsCredsCommand(program);
  return program;
}

function report(err: unknown, json: boolean): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  const e = err instanceof KeyhubError ? err : KeyhubError.from(err, 'INTERNAL');
  if (json) printJson({ error: e.toJSON() });
  else printError(`error [${e.code}]: ${e.message}`);
  if (process.env.KEYHUB_DEBUG === '1' && err instanceof Error) printError(err.stack ?? err.message);
  return e.exitCode;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? EXIT.ok);
  } catch (err) {
    return report(err, program.opts<{ json?: boolean }>().json === true);
  }
}

if (require.main === module) {
  main(process.argv).then(
    async (code) => {
      await flushStdio();
      process.exit(code);
    },
    (err: unknown) => {
      printError(`keyhub-server: ${String(err)}`);
      process.exit(EXIT.failure);
    },
  );
}
