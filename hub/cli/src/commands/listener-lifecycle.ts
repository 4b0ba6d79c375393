import type { Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine, printTable, terminalSafe } from '../output';

/** A list of key versions at a site, as the operator reads it. */
function printSiteKeys(rows: readonly api.SiteKeyView[], empty: string): void {
  printTable(
    rows,
    [
      { header: 'key', value: (r) => terminalSafe(r.keyName) },
      { header: 'version', value: (r) => r.version, align: 'right' },
      { header: 'target', value: (r) => terminalSafe(r.target) },
      { header: 'state', value: (r) => r.state },
      { header: 'elsewhere', value: (r) => (r.heldElsewhere ? 'yes' : 'no') },
    ],
    { empty },
  );
}

function positiveSeconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!m || Number(m[1]) === 0) throw new CliError('INPUT_INVALID', '--timeout is a number of seconds, or with a unit: 90m, 12h, 2d');
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

/** `keyhub listener rotate-kek | rekey --compromised | decommission`: a site's root KEK and its end. */
export function registerListenerLifecycleCommands(listener: Command): void {
  listener
    .command('rotate-kek')
    .description("rotate a site's root KEK: the new one travels wrapped under the current one, and is used once the site confirms its KCV")
    .argument('<id>', 'listener id')
    .option('--reason <text>', 'why, for the audit trail')
    .action(async (id: string, opts: { reason?: string }, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).post(`/v1/listeners/${encodeURIComponent(id)}/rotate-kek`, api.rotateKekResult, opts.reason ? { reason: opts.reason } : {}, 202);
      if (g.json) return printJson(r);
      printFields([
        ['listener', id],
        ['new root KEK', `${r.kekId} (v${r.version})`],
        ['kek kcv', r.kcv],
        ['wrapped under', `${r.wrappedUnder.kekId} (v${r.wrappedUnder.version})`],
      ]);
      printLine('Packages use the new KEK once the site confirms this KCV (audit event kek.rotated).');
    });

  listener
    .command('rekey')
    .description("declare a site's root KEK compromised: distribution to it stops, it must enroll again, and every key it was sent is listed for re-keying")
    .argument('<id>', 'listener id')
    .option('--compromised', 'required: the root KEK is (or may be) known to someone else; a routine rotation is `rotate-kek`')
    .option('--reason <text>', 'why, for the audit trail')
    .action(async (id: string, opts: { compromised?: boolean; reason?: string }, cmd: Command) => {
      const g = globals(cmd);
      if (!opts.compromised) throw new CliError('INPUT_INVALID', 'say --compromised to declare the root KEK compromised; for a routine rotation use `keyhub listener rotate-kek`');
      const r = await (await client()).post(`/v1/listeners/${encodeURIComponent(id)}/compromise-kek`, api.compromiseKekResult, opts.reason ? { reason: opts.reason } : {});
      if (g.json) return printJson(r);
      printFields([
        ['listener', id],
        ['state', r.state],
        ['compromised KEKs', r.compromisedKeks.map((k) => `v${k.version}`).join(', ') || '(none)'],
        ['cancelled distributions', r.cancelledDistributions],
      ]);
      printLine('Key versions that travelled under the compromised KEK (rotate each):');
      printSiteKeys(r.keysToRekey, '(none)');
      printLine(`The site enrolls again (keyhub-listener enroll); approve it with the new fingerprint: keyhub listener approve ${terminalSafe(id)} --fingerprint ...`);
    });

  listener
    .command('decommission')
    .description('decommission a site: revoke its root KEKs, send destroy for what it holds, then revoke its NATS identity')
    .argument('<id>', 'listener id')
    .option('--timeout <duration>', 'how long the site may take to confirm its destroys before its identity is revoked anyway (default 1h)')
    .option('--force', 'revoke at once, sending no destroy (the site is gone or not trusted)')
    .option('--reason <text>', 'why, for the audit trail')
    .action(async (id: string, opts: { timeout?: string; force?: boolean; reason?: string }, cmd: Command) => {
      const g = globals(cmd);
      const body = { ...(opts.force ? { force: true } : {}), ...(opts.timeout ? { timeoutSeconds: positiveSeconds(opts.timeout) } : {}), ...(opts.reason ? { reason: opts.reason } : {}) };
      const res = await (await client()).call('POST', `/v1/listeners/${encodeURIComponent(id)}/decommission`, { 200: api.decommissionResult, 202: api.approvalPending }, body);
      if (g.json) return printJson(res.body);
      if (res.status === 202) return printPending(res.body.approval);
      const r = res.body;
      printFields([
        ['listener', id],
        ['state', r.state],
        ['destroy commands', `${r.destroyCommands} (${r.destroysOutstanding} outstanding)`],
        ...(r.deadline ? ([['identity revoked at the latest', r.deadline]] as Array<[string, string]>) : []),
        ['cancelled distributions', r.cancelledDistributions],
      ]);
      printLine('Held only at this site (re-key these, or they are gone with it):');
      printSiteKeys(r.heldOnlyHere, '(none)');
    });
}
