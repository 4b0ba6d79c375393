import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { Command } from 'commander';

/**
 * `keyhub init`, `keyhub serve` and `keyhub migrate` run beside the database
 * and the HSM, so they live in the server's own entry point
 * (`keyhub-server`); these commands only hand over to it. The client's
 * compiled code never contains the server's, and needs no database URL or
 * PIN for anything else.
 */
function serverEntry(): string {
  return process.env.KEYHUB_SERVER_BIN ?? path.resolve(__dirname, '..', '..', '..', 'dist', 'main.js');
}

function handOver(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [serverEntry(), ...args], { stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
    child.on('error', () => resolve(1));
  });
}

export function registerServerCommands(program: Command): void {
  for (const [name, description] of [
    ['init', 'set up the hub (HSM keys, CA, database, first admin); runs keyhub-server init'],
    ['serve', 'run the hub (API, relay, receipts, checkpoints); runs keyhub-server serve'],
    ['migrate', 'run database migrations as the owner role; runs keyhub-server migrate'],
  ] as const) {
    program
      .command(name)
      .description(description)
      .allowUnknownOption()
      .helpOption(false)
      .argument('[args...]')
      .action(async (args: string[], _opts: unknown, cmd: Command) => {
        const json = cmd.optsWithGlobals<{ json?: boolean }>().json ? ['--json'] : [];
        process.exitCode = await handOver([...json, name, ...args]);
      });
  }
}
