#!/usr/bin/env node
import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { EXIT } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { registerAuditCommands } from './commands/audit';
import { registerDistributeCommand } from './commands/distribute';
import { registerInitCommands } from './commands/init';
import { registerKeyCommands } from './commands/key';
import { registerListenerCommands } from './commands/listener';
import { registerServeCommand } from './commands/serve';
import { registerStatusCommand } from './commands/status';
import { flushStdio, printError, printJson } from './output';

export function buildProgram(): Command {
  const program = new Command('keyhub')
    .description('Keyhub: generate keys in the hub HSM and push them, KEK-wrapped, to listener sites')
    .option('--config <file>', 'hub configuration (JSON); default: $KEYHUB_CONFIG')
    .option('--json', 'print results as JSON, one document per line')
    // No commander default: resolved when a command runs, so `--help` needs no user lookup.
    .option('--actor <name>', 'who is acting, as recorded in the audit trail (default: $KEYHUB_ACTOR or the login name)')
    // Set before the subcommands exist: commander copies these settings into each one.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  registerInitCommands(program);
  registerKeyCommands(program);
  registerListenerCommands(program);
  registerDistributeCommand(program);
  registerStatusCommand(program);
  registerAuditCommands(program);
  registerServeCommand(program);
  return program;
}

function debugEnabled(): boolean {
  return process.env.KEYHUB_DEBUG === '1';
}

/** Stack traces help developers, not operators; the cause chain shows what failed underneath. */
function printDebug(err: unknown): void {
  let current: unknown = err;
  for (let depth = 0; current !== undefined && depth < 8; depth++) {
    printError(depth === 0 ? '' : 'caused by:');
    printError(current instanceof Error ? (current.stack ?? current.message) : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
}

function report(err: unknown, json: boolean): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message already; help and the like end with 0, anything else is misuse.
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  const e = err instanceof KeyhubError ? err : KeyhubError.from(err, 'INTERNAL');
  if (json) printJson({ error: e.toJSON() });
  else printError(`error [${e.code}]: ${e.message}`);
  if (debugEnabled() || !(err instanceof KeyhubError)) {
    if (debugEnabled()) printDebug(err);
    else printError('(set KEYHUB_DEBUG=1 for details)');
  }
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
      // Explicit, so that a handle some library left open cannot keep a finished command running.
      process.exit(code);
    },
    (err: unknown) => {
      printError(`keyhub: ${String(err)}`);
      process.exit(EXIT.failure);
    },
  );
}
