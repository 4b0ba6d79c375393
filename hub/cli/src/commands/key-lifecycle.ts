import { InvalidArgumentError, type Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { printFields, printJson, printLine, printTable } from '../output';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 7 * 86_400, y: 365 * 86_400 };

/** A duration for lifecycle settings: `90d`, `12h`, `30m`, `45s`, `1y`, or a plain number of seconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)([smhdwy]?)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 90d, 12h, 30m, 45s or a number of seconds');
  const seconds = Number(m[1]) * UNIT_SECONDS[m[2] || 's'];
  if (!Number.isSafeInteger(seconds)) throw new InvalidArgumentError('duration too long');
  return seconds;
}

/** An ISO 8601 date-time, sent as UTC. */
export function parseDate(value: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new InvalidArgumentError('expected an ISO 8601 date-time, e.g. 2027-01-01T00:00:00Z');
  return new Date(t).toISOString();
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const STATE_ACTIONS: Array<{ action: api.KeyStateActionName; description: string }> = [
  { action: 'suspend', description: 'take a key version out of use for a while (sites switch its usages off)' },
  { action: 'resume', description: 'put a suspended key version back into use' },
  { action: 'activate', description: 'activate a pre-activation key version before its activation date' },
  { action: 'deactivate', description: 'retire a key version: sites keep it only for processing (e.g. decrypting) old data, as their target allows' },
  { action: 'compromise', description: 'mark a key version compromised: urgent command to every site, never sent again (dual control by policy key.compromise)' },
  { action: 'destroy', description: 'destroy a key version at every site and erase its material at the hub (dual control by policy key.destroy)' },
];

/** `keyhub key show|rotate|suspend|resume|activate|deactivate|compromise|destroy`: the NIST SP 800-57 lifecycle of key versions. */
export function registerKeyLifecycleCommands(key: Command): void {
  key
    .command('show')
    .description('a key with every version: state, KCV, activation and deactivation dates')
    .argument('<name>', 'key name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const d = await (await client()).get(`/v1/keys/${encodeURIComponent(name)}`, api.keyDetail);
      if (g.json) return printJson(d);
      const life = d.lifecycle;
      printFields([
        ['key', d.key.name],
        ['algorithm', d.key.algorithm],
        ['state', d.key.state],
        ['current version', d.key.currentVersion],
        ['target kinds', d.key.targetKinds.join(', ')],
        ['clear import', d.key.allowClearImport ? 'allowed (cloud JWK import, audited)' : 'refused'],
        ['cryptoperiod', life.cryptoperiodSeconds === null ? 'none' : `${life.cryptoperiodSeconds} s`],
        ['rotate every', life.rotateEverySeconds === null ? 'never (manual)' : `${life.rotateEverySeconds} s`],
        ['grace after rotation', `${life.graceSeconds} s`],
      ]);
      printTable(
        d.versions,
        [
          { header: 'version', value: (v) => v.version, align: 'right' },
          { header: 'kcv', value: (v) => v.kcv },
          { header: 'state', value: (v) => v.state },
          { header: 'activate at', value: (v) => v.activateAt },
          { header: 'deactivate at', value: (v) => v.deactivateAt },
          { header: 'changed', value: (v) => v.stateChangedAt },
          { header: 'reason', value: (v) => v.stateReason },
        ],
        { empty: 'no versions' },
      );
    });

  key
    .command('rotate')
    .description('make a new version of a key and send it to every site that holds the key; older versions are deactivated after the grace period')
    .argument('<name>', 'key name')
    .option('--reason <text>', 'why, for the audit trail')
    .action(async (name: string, opts: { reason?: string }, cmd: Command) => {
      const g = globals(cmd);
      const body: api.RotateKeyBody = opts.reason ? { reason: opts.reason } : {};
      const r = await (await client()).post(`/v1/keys/${encodeURIComponent(name)}/rotate`, api.rotateKeyResult, body, 201);
      if (g.json) return printJson(r);
      printFields([
        ['key', r.key],
        ['version', `${r.version} (was ${r.previous})`],
        ['kcv', r.kcv],
        ['queued to sites', r.queued],
        ['older versions deactivated at', r.graceUntil ?? 'none active'],
      ]);
    });

  for (const { action, description } of STATE_ACTIONS) {
    key
      .command(action)
      .description(description)
      .argument('<name>', 'key name')
      .option('--version <n>', 'the version (default: the current one)', positiveInt)
      .option('--reason <text>', 'why, for the audit trail and the sites')
      .action(async (name: string, opts: { version?: number; reason?: string }, cmd: Command) => {
        const g = globals(cmd);
        const body: api.KeyStateBody = { action, ...(opts.version ? { version: opts.version } : {}), ...(opts.reason ? { reason: opts.reason } : {}) };
        const r = await (await client()).call('POST', `/v1/keys/${encodeURIComponent(name)}/state`, { 200: api.keyStateResult, 202: api.approvalPending }, body);
        if (g.json) return printJson(r.body);
        if (r.status === 202) return printPending(r.body.approval);
        printLine(`${r.body.key} version ${r.body.version}: ${r.body.from} -> ${r.body.to}; command queued to ${r.body.sites} site(s)`);
      });
  }
}
