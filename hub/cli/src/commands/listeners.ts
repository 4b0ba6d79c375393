import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { registerListenerLifecycleCommands } from './listener-lifecycle';
import { registerRootKekCeremonyCommands } from './root-kek-ceremony';
import { registerLabelCommand } from './placements';
import { printTargets, registerTargetCommands } from './targets';
import { printFields, printJson, printLine, printTable, terminalSafe } from '../output';

/** Enough of the fingerprint to tell listeners apart in a table; `listener show` prints all of it for the comparison. */
function shortFingerprint(fp: string): string {
  return `${fp.split('-').slice(0, 2).join('-')}…`;
}

export function registerListenerCommands(program: Command): void {
  const listener = program.command('listener').description('listener agents and their enrollment');
  registerLabelCommand(listener);

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
      await printTargets(id);
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

  listener
    .command('register')
    .description("register a site id before it enrolls, and write its bootstrap NATS credential (hand it to the site; it can only send that site's enrollment)")
    .argument('<id>', 'listener id')
    .option('--ttl <ttl>', 'lifetime of the bootstrap credential (seconds, or 90m, 12h, 30d; default from the hub)')
    .option('--out <file>', 'where to write the .creds file (mode 0600, must not exist)', undefined)
    .action(async (id: string, opts: { ttl?: string; out?: string }, cmd: Command) => {
      const g = globals(cmd);
      const out = opts.out ?? `${id}.bootstrap.creds`;
      // Opened before the request: a path that cannot be written stops us before a credential exists that nobody holds.
      const file = await open(out, 'wx', 0o600).catch((err: unknown) => {
        throw new CliError('INPUT_INVALID', `cannot create ${out} (it must not exist yet): ${(err as Error).message}`);
      });
      try {
        const r = await (await client()).post(`/v1/listeners/${encodeURIComponent(id)}/register`, api.registerListenerResult, { ttlSeconds: durationSeconds(opts.ttl) }, 201);
        await file.writeFile(r.creds);
        await file.sync();
        const { creds: _secret, ...shown } = r;
        if (g.json) return printJson({ ...shown, credsFile: out });
        printFields([
          ['listener', id],
          ['bootstrap key', r.bootstrapKey],
          ['expires', r.expiresAt],
          ['credential', out],
        ]);
        printLine('Hand the file to the site (keyhub-listener init --bootstrap-creds); it allows nothing but that enrollment.');
      } finally {
        await file.close();
      }
    });

  listener
    .command('revoke')
    .description('revoke a listener: its NATS user and any bootstrap credential are cut off at once')
    .argument('<id>', 'listener id')
    .option('--reason <text>', 'why, for the audit trail')
    .action(async (id: string, opts: { reason?: string }, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).post(`/v1/listeners/${encodeURIComponent(id)}/revoke`, api.revokeListenerResult, opts.reason ? { reason: opts.reason } : {});
      if (g.json) return printJson(r);
      printFields([
        ['listener', id],
        ['state', r.state],
        ['NATS keys revoked', r.revokedNatsKeys],
      ]);
    });

  registerListenerLifecycleCommands(listener);
  registerRootKekCeremonyCommands(listener);
  registerTargetCommands(listener);
}

function durationSeconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!m) throw new CliError('INPUT_INVALID', '--ttl is a number of seconds, or with a unit: 90m, 12h, 30d');
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}
