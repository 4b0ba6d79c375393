import type { Command } from 'commander';
import { KeyStatus } from '../../domain/status';
import { printJson, printTable } from '../output';
import { globalOptions, withRuntime } from '../runtime';

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('where every key version is: one row per key version, listener and target')
    .argument('[key]', 'only this key')
    .action(async (keyName: string | undefined, _opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const rows = await withRuntime(g, (rt) => rt.container.resolve(KeyStatus).execute(keyName));
      if (g.json) return printJson(rows);
      printTable(
        rows,
        [
          { header: 'key', value: (r) => r.key },
          { header: 'version', value: (r) => r.version, align: 'right' },
          { header: 'kcv', value: (r) => r.kcv },
          { header: 'listener', value: (r) => r.listener },
          { header: 'target', value: (r) => r.target },
          { header: 'state', value: (r) => r.state },
          { header: 'attempts', value: (r) => r.attempts, align: 'right' },
          { header: 'error', value: (r) => r.errorCode },
        ],
        { empty: 'no keys' },
      );
    });
}
