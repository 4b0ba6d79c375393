import type { Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { printFields, printJson, printLine, printTable, terminalSafe } from '../output';

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
      const g = globals(cmd);
      const { listeners } = await (await client()).get('/v1/listeners', api.listenerList);
      if (g.json) return printJson(listeners);
      printTable(
        listeners,
        [
          { header: 'id', value: (r) => r.id },
          { header: 'state', value: (r) => r.state },
          { header: 'fingerprint', value: (r) => shortFingerprint(r.fingerprint) },
          { header: 'targets', value: (r) => terminalSafe(r.targets.join(', ')) },
          { header: 'host', value: (r) => terminalSafe(r.hostname ?? '') },
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
      const g = globals(cmd);
      const row = await (await client()).get(`/v1/listeners/${encodeURIComponent(id)}`, api.listenerView);
      if (g.json) return printJson(row);
      printFields([
        ['id', row.id],
        ['state', row.state],
        ['fingerprint', row.fingerprint],
        ['targets', terminalSafe(row.targets.join(', '))],
        ['host', terminalSafe(row.hostname ?? '')],
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
      const g = globals(cmd);
      const r = await (await client()).call('POST', `/v1/listeners/${encodeURIComponent(id)}/approve`, { 200: api.approveListenerResult, 202: api.approvalPending }, { fingerprint: opts.fingerprint });
      if (g.json) return printJson(r.body);
      if (r.status === 202) return printPending(r.body.approval);
      printFields([
        ['listener', id],
        ['root KEK', r.body.kekId],
        ['kek kcv', r.body.kcv],
      ]);
      printLine('The listener becomes active once it confirms this KCV.');
    });
}
