#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT } from '@keyhub/protocol';
import { registerApprovalCommands } from './commands/approvals';
import { registerAuditCommands } from './commands/audit';
import { registerCertificateCommands } from './commands/certificates';
import { registerDistributeCommand } from './commands/distribute';
import { registerKeyCommands } from './commands/keys';
import { registerListenerCommands } from './commands/listeners';
import { registerOperatorCommands } from './commands/operators';
import { registerPlacementCommands } from './commands/placements';
import { registerPolicyCommands } from './commands/policies';
import { registerReportCommands } from './commands/reports';
import { registerServerCommands } from './commands/server';
import { registerSessionCommands } from './commands/session';
import { CliError } from './errors';
import { flushStdio, printError, printJson } from './output';

/**
 * `keyhub`, the operators' client. It talks only to the hub's HTTPS API
 * (KEYHUB_ADDR, KEYHUB_CACERT, KEYHUB_TOKEN or `keyhub login`), and is
 * compiled as a project of its own that may import `protocol/` and nothing
 * of the server, so no database URL or HSM PIN can reach it.
 */
export function buildProgram(): Command {
  const program = new Command('keyhub')
    .description('Keyhub: generate keys in the hub HSM and push them, KEK-wrapped, to listener sites')
    .option('--json', 'print results as JSON, one document per line')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  registerSessionCommands(program);
  registerOperatorCommands(program);
  registerCertificateCommands(program);
  registerPolicyCommands(program);
  registerApprovalCommands(program);
  registerKeyCommands(program);
  registerListenerCommands(program);
  registerDistributeCommand(program);
  registerPlacementCommands(program);
  registerAuditCommands(program);
  registerReportCommands(program);
  registerServerCommands(program);
  return program;
}

function report(err: unknown, json: boolean): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  const e = err instanceof CliError ? err : new CliError('INTERNAL', err instanceof Error ? err.message : String(err));
  if (json) printJson({ error: e.toJSON() });
  else printError(`error [${e.code}]: ${e.message}`);
  if (process.env.KEYHUB_DEBUG === '1' && err instanceof Error && err.stack) printError(err.stack);
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
      printError(`keyhub: ${String(err)}`);
      process.exit(EXIT.failure);
    },
  );
}
