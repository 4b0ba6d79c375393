import type { Command } from 'commander';
import { KeyhubError } from '@keyhub/shared';
import { ApproveListener } from '../../domain/approve-listener';
import { ListListeners, type ListenerRow } from '../../domain/list-listeners';
import { printFields, printJson, printLine, printTable } from '../output';
import { globalOptions, withRuntime } from '../runtime';

/** Enough of the fingerprint to tell listeners apart in a table; `listener show` prints all of it for the comparison. */
function shortFingerprint(fp: string): string {
  return `${fp.split('-').slice(0, 2).join('-')}…`;
}

export function registerListenerCommands(program: Command): void {
  const listener = program.command('listener').description('listener agents and their enrollment');

  listener
    .command('list')
    .description('every listener with its state, targets and backlog')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const rows = await withRuntime(g, (rt) => rt.container.resolve(ListListeners).execute());
      if (g.json) return printJson(rows);
      printTable(
        rows,
        [
          { header: 'id', value: (r) => r.id },
          { header: 'state', value: (r) => r.state },
          { header: 'fingerprint', value: (r) => shortFingerprint(r.fingerprint) },
          { header: 'targets', value: (r) => r.targets.join(', ') },
          { header: 'host', value: (r) => r.hostname },
          { header: 'last seen', value: (r) => r.lastSeenAt },
          { header: 'backlog', value: (r) => r.backlog, align: 'right' },
        ],
        { empty: 'no listeners' },
      );
    });

  listener
    .command('show')
    .description('one listener, with the full enrollment fingerprint')
    .argument('<id>', 'listener id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const rows = await withRuntime(g, (rt) => rt.container.resolve(ListListeners).execute());
      const row: ListenerRow | undefined = rows.find((r) => r.id === id);
      if (!row) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${id}`);
      if (g.json) return printJson(row);
      printFields([
        ['id', row.id],
        ['state', row.state],
        ['fingerprint', row.fingerprint],
        ['targets', row.targets.join(', ')],
        ['host', row.hostname],
        ['requested at', row.requestedAt],
        ['activated at', row.activatedAt],
        ['last seen', row.lastSeenAt],
        ['backlog', row.backlog],
      ]);
    });

  listener
    .command('approve')
    .description('approve an enrollment after comparing its fingerprint with the one shown at the site')
    .argument('<id>', 'listener id')
    .requiredOption('--fingerprint <fp>', 'enrollment fingerprint as read at the listener (case and separators ignored)')
    .action(async (id: string, opts: { fingerprint: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const result = await withRuntime(g, (rt) => rt.container.resolve(ApproveListener).execute(id, opts.fingerprint, g.actor));
      if (g.json) return printJson({ listenerId: id, ...result });
      printFields([
        ['listener', id],
        ['root KEK', result.kekId],
        ['kek kcv', result.kcv],
      ]);
      printLine('The listener becomes active once it confirms this KCV (requires `keyhub serve` to be running).');
    });
}
