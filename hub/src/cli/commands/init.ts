import type { Command } from 'commander';
import { TOKENS } from '../../tokens';
import { initHub } from '../../domain/init-hub';
import { printFields, printJson, printLine } from '../output';
import { globalOptions, withRuntime } from '../runtime';

export function registerInitCommands(program: Command): void {
  program
    .command('init')
    .description('create the hub master key and signing key in the HSM (if absent) and migrate the database; safe to repeat')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const result = await withRuntime(g, (rt) => initHub(rt.hsm, rt.ds, g.actor), { requireKeyring: false });
      if (g.json) return printJson(result);
      printFields([
        ['hub fingerprint', result.fingerprint],
        ['created keys', result.createdKeys.length ? result.createdKeys.join(', ') : 'none (already present)'],
        ['migrations run', result.migrations.length ? result.migrations.join(', ') : 'none (up to date)'],
      ]);
      printLine('Listeners pin the hub fingerprint at install time; hand it to them out of band.');
    });

  program
    .command('fingerprint')
    .description('print the fingerprint of the hub signing key, as listeners pin it')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const fingerprint = await withRuntime(g, async (rt) => rt.container.resolve(TOKENS.keyring).fingerprint);
      if (g.json) return printJson({ fingerprint });
      printLine(fingerprint);
    });
}
