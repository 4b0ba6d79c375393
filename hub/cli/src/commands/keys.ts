import { InvalidArgumentError, Option, type Command } from 'commander';
import { api, KEY_ALGORITHMS, KEY_USAGES, TARGET_KINDS } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { printDriftStatus } from './placements';
import { CliError } from '../errors';
import { printFields, printJson, printLine, printTable } from '../output';
import { registerKeyCertificateCommands } from './key-certificates';
import { parseDate, parseDuration, registerKeyLifecycleCommands } from './key-lifecycle';

interface CreateOptions {
  alg: string;
  usage?: string[];
  exportable?: boolean;
  sensitive?: boolean;
  count?: string;
  activateAt?: string;
  cryptoperiod?: number;
  rotateEvery?: number;
  grace?: number;
  targetKinds?: string[];
  allowClearImport?: boolean;
}

/** `--target-kinds pkcs11,keystore`: comma-separated kinds of target (issue 12). */
function parseTargetKinds(v: string): string[] {
  const kinds = v
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const unknown = kinds.find((k) => !(TARGET_KINDS as readonly string[]).includes(k));
  if (unknown !== undefined || kinds.length === 0) throw new InvalidArgumentError(`expected a comma-separated list of ${TARGET_KINDS.join(', ')}`);
  return kinds;
}

export function registerKeyCommands(program: Command): void {
  const key = program.command('key').description('managed keys');

  key
    .command('create')
    .description('generate a key in the hub HSM; it is stored only wrapped under the hub master key')
    .argument('<name>', 'key name (A-Z a-z 0-9 . _ : / -)')
    .addOption(new Option('--alg <algorithm>', 'key algorithm').choices(KEY_ALGORITHMS).makeOptionMandatory())
    .addOption(new Option('--usage <usage...>', 'usages granted at the targets (default per algorithm: AES/TDES encrypt decrypt, HMAC and key pairs sign verify, GENERIC derive)').choices(KEY_USAGES))
    .option('--exportable', 'targets may let the key be exported again')
    .option('--sensitive', 'distributing it falls under the distribution.sensitive approval policy')
    .option('--target-kinds <kinds>', `kinds of target the key may reach, comma-separated (${TARGET_KINDS.join(', ')}; default pkcs11 only)`, parseTargetKinds)
    .option('--allow-clear-import', 'allow cloud JWK import, which sends the key in clear inside TLS (audited)')
    .option('--count <n>', 'create n keys named <name>-00001 ... in one transaction (bulk provisioning)')
    .option('--activate-at <date>', 'start in pre-activation; the hub activates version 1 at this date (ISO 8601)', parseDate)
    .option('--cryptoperiod <duration>', 'each version is deactivated this long after activation (e.g. 365d)', parseDuration)
    .option('--rotate-every <duration>', 'rotate automatically this long after the current version became active (e.g. 90d)', parseDuration)
    .option('--grace <duration>', 'after a rotation, older versions stay active at the sites this long (default 1d)', parseDuration)
    .action(async (name: string, opts: CreateOptions, cmd: Command) => {
      const g = globals(cmd);
      const count = opts.count === undefined ? undefined : Number(opts.count);
      if (count !== undefined && (!Number.isInteger(count) || count < 1 || count > 100_000)) throw new CliError('INPUT_INVALID', '--count must be a whole number from 1 to 100000');
      const lifecycle = { activateAt: opts.activateAt, cryptoperiodSeconds: opts.cryptoperiod, rotateEverySeconds: opts.rotateEvery, graceSeconds: opts.grace };
      const policy = { targetKinds: opts.targetKinds, allowClearImport: opts.allowClearImport };
      const body = { name, algorithm: opts.alg, usages: opts.usage, exportable: opts.exportable, sensitive: opts.sensitive, count, ...policy, ...lifecycle };
      const { keys } = await (await client()).post('/v1/keys', api.createKeyResult, body, 201);
      if (g.json) return printJson(count === undefined ? keys[0] : keys);
      if (count !== undefined) return printLine(`created ${keys.length} keys: ${keys[0].name} .. ${keys[keys.length - 1].name}`);
      printFields([
        ['key', keys[0].name],
        ['id', keys[0].id],
        ['algorithm', keys[0].algorithm],
        ['version', keys[0].version],
        ['kcv', keys[0].kcv],
      ]);
    });

  key
    .command('list')
    .description("every key with its current version and that version's KCV")
    .option('--prefix <prefix>', 'only keys whose name starts with this')
    .action(async (opts: { prefix?: string }, cmd: Command) => {
      const g = globals(cmd);
      const c = await client();
      const rows: api.KeyView[] = [];
      let after: string | null = null;
      do {
        const q = new URLSearchParams({ limit: '10000', ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(after ? { after } : {}) });
        const page: { keys: api.KeyView[]; next: string | null } = await c.get(`/v1/keys?${q}`, api.keyList);
        rows.push(...page.keys);
        after = page.next;
      } while (after);
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
          { header: 'sensitive', value: (r) => (r.sensitive ? 'yes' : 'no') },
          { header: 'targets', value: (r) => r.targetKinds.join(',') + (r.allowClearImport ? '+clear' : '') },
          { header: 'state', value: (r) => r.state },
        ],
        { empty: 'no keys' },
      );
    });

  key
    .command('target-policy')
    .description('the kinds of target a key may reach from now on; a widening is dual control under key.target_policy')
    .argument('<name>', 'key name')
    .requiredOption('--target-kinds <kinds>', `comma-separated (${TARGET_KINDS.join(', ')})`, parseTargetKinds)
    .option('--allow-clear-import', 'allow cloud JWK import (the key in clear inside TLS)')
    .option('--no-allow-clear-import', 'refuse cloud JWK import')
    .action(async (name: string, opts: { targetKinds: string[]; allowClearImport?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const body = { targetKinds: opts.targetKinds, ...(opts.allowClearImport !== undefined ? { allowClearImport: opts.allowClearImport } : {}) };
      const res = await (await client()).call('PUT', `/v1/keys/${encodeURIComponent(name)}/target-policy`, { 200: api.targetPolicyResult, 202: api.approvalPending }, body);
      if (g.json) return printJson(res.body);
      if (res.status === 202) return printPending(res.body.approval);
      printFields([
        ['key', res.body.key],
        ['target kinds', res.body.targetKinds.join(', ')],
        ['clear import', res.body.allowClearImport ? 'allowed' : 'refused'],
        ['versions re-bound', res.body.versions],
      ]);
    });

  // show, rotate and the state changes, after create and list in `keyhub key --help`.
  registerKeyLifecycleCommands(key);
  // certificate and csr: chains of key pair versions, for keystores.
  registerKeyCertificateCommands(key);

  program
    .command('status')
    .description('where every key version is: one row per key version, listener and target')
    .argument('[key]', 'only this key')
    .option('--drift', "drift instead: what the sites' signed inventories show against what they should hold (missing, extra, KCV and state mismatches)")
    .option('--listener <id>', 'with --drift: only this site')
    .option('--commands', 'the lifecycle commands sent to sites instead: per key version and command, which sites confirmed it and which are outstanding')
    .action(async (keyName: string | undefined, opts: { commands?: boolean; drift?: boolean; listener?: string }, cmd: Command) => {
      const g = globals(cmd);
      if (opts.drift) return printDriftStatus(opts.listener, g.json);
      if (opts.commands) return printCommandStatus(keyName, g.json);
      const path = keyName === undefined ? '/v1/status' : `/v1/keys/${encodeURIComponent(keyName)}/status`;
      const { rows } = await (await client()).get(path, api.statusList);
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
          { header: 'cloud key', value: (r) => (r.cloud ? cloudImportText(r.cloud) : null) },
        ],
        { empty: 'no keys' },
      );
    });
}

/** `keyhub status --commands`: one line per command and site, outstanding ones marked. */
async function printCommandStatus(keyName: string | undefined, json: boolean | undefined): Promise<void> {
  const path = keyName === undefined ? '/v1/commands' : `/v1/keys/${encodeURIComponent(keyName)}/commands`;
  const { commands } = await (await client()).get(path, api.commandStatusList);
  if (json) return printJson(commands);
  const rows = commands.flatMap((c) => c.sites.map((s) => ({ ...s, key: c.key, version: c.version, action: c.action, summary: `${c.confirmed}/${c.sites.length}` })));
  printTable(
    rows,
    [
      { header: 'key', value: (r) => r.key },
      { header: 'version', value: (r) => r.version, align: 'right' },
      { header: 'command', value: (r) => r.action },
      { header: 'confirmed', value: (r) => r.summary, align: 'right' },
      { header: 'listener', value: (r) => r.listener },
      { header: 'target', value: (r) => r.target },
      { header: 'state', value: (r) => (r.state === 'pending' ? 'outstanding' : r.state) },
      { header: 'effect', value: (r) => r.effect ?? r.errorCode },
    ],
    { empty: 'no commands' },
  );
}

/** A cloud import as one cell: the cloud's key id, version id and import state. */
function cloudImportText(c: api.CloudImportView): string {
  return `${c.keyId} ${c.versionId ? `v=${c.versionId} ` : ''}(${c.importState})`;
}
