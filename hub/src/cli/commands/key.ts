import { Option, type Command } from 'commander';
import { KEY_ALGORITHMS, KEY_USAGES } from '@keyhub/protocol';
import { CreateKey } from '../../domain/create-key';
import { ListKeys } from '../../domain/list-keys';
import { printFields, printJson, printTable } from '../output';
import { globalOptions, withRuntime } from '../runtime';

interface CreateOptions {
  alg: string;
  usage?: string[];
  exportable?: boolean;
}

export function registerKeyCommands(program: Command): void {
  const key = program.command('key').description('managed keys');

  key
    .command('create')
    .description('generate a key in the hub HSM; it is stored only wrapped under the hub master key')
    .argument('<name>', 'key name (A-Z a-z 0-9 . _ : / -)')
    .addOption(new Option('--alg <algorithm>', 'key algorithm').choices(KEY_ALGORITHMS).makeOptionMandatory())
    .addOption(new Option('--usage <usage...>', 'usages granted at the targets (default: encrypt decrypt)').choices(KEY_USAGES))
    .option('--exportable', 'targets may let the key be exported again', false)
    .action(async (name: string, opts: CreateOptions, cmd: Command) => {
      const g = globalOptions(cmd);
      const created = await withRuntime(g, (rt) =>
        rt.container.resolve(CreateKey).execute({ name, algorithm: opts.alg, usages: opts.usage, exportable: opts.exportable === true, actor: g.actor }),
      );
      if (g.json) return printJson(created);
      printFields([
        ['key', created.name],
        ['id', created.id],
        ['algorithm', created.algorithm],
        ['version', created.version],
        ['kcv', created.kcv],
      ]);
    });

  key
    .command('list')
    .description('every key with its current version and that version\'s KCV')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const rows = await withRuntime(g, (rt) => rt.container.resolve(ListKeys).execute());
      if (g.json) return printJson(rows);
      printTable(
        rows,
        [
          { header: 'name', value: (r) => r.name },
          { header: 'algorithm', value: (r) => r.algorithm },
          { header: 'version', value: (r) => r.currentVersion, align: 'right' },
          { header: 'kcv', value: (r) => r.kcv },
          { header: 'usages', value: (r) => r.usages.join(',') },
          { header: 'exportable', value: (r) => (r.exportable ? 'yes' : 'no') },
          { header: 'state', value: (r) => r.state },
        ],
        { empty: 'no keys' },
      );
    });
}
