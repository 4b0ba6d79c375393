import { Option, type Command } from 'commander';
import { KEY_ALGORITHMS, KEY_USAGES } from '@keyhub/protocol';
import { CreateKey } from '../../domain/create-key';
import { ListKeys } from '../../domain/list-keys';
import { KeyhubError } from '@keyhub/shared';
import { printFields, printJson, printLine, printTable } from '../output';
import { globalOptions, withRuntime } from '../runtime';

interface CreateOptions {
  alg: string;
  count?: string;
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
    .option('--count <n>', 'create n keys named <name>-00001 ... in one transaction (bulk provisioning)')
    .action(async (name: string, opts: CreateOptions, cmd: Command) => {
      const g = globalOptions(cmd);
      if (opts.count !== undefined) {
        const count = Number(opts.count);
        if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new KeyhubError('INPUT_INVALID', '--count must be a whole number from 1 to 100000');
        const width = Math.max(5, String(count).length);
        const inputs = Array.from({ length: count }, (_, i) => ({
          name: `${name}-${String(i + 1).padStart(width, '0')}`, algorithm: opts.alg, usages: opts.usage, exportable: opts.exportable === true, actor: g.actor,
        }));
        const many = await withRuntime(g, (rt) => rt.container.resolve(CreateKey).executeMany(inputs));
        if (g.json) return printJson(many);
        printLine(`created ${many.length} keys: ${many[0].name} .. ${many[many.length - 1].name}`);
        return;
      }
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
