import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import type { HubClient } from '../client';
import { CliError } from '../errors';
import { printJson, printLine, printTable, ProgressBar } from '../output';
import { waitForRequest } from './approvals';

interface DistributeOptions {
  version?: number;
  keyPrefix?: string;
  to?: api.DestinationBody[];
  toAll?: boolean;
  wait?: boolean;
  timeout: number;
}

const POLL_MS = 250;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
}

/** The first slash separates listener from target, so target names may contain slashes. */
function collectDestination(value: string, previous: api.DestinationBody[] | undefined): api.DestinationBody[] {
  const slash = value.indexOf('/');
  const listenerId = slash < 0 ? value : value.slice(0, slash);
  const target = slash < 0 ? undefined : value.slice(slash + 1);
  if (!listenerId || target === '') throw new InvalidArgumentError('expected <listener> or <listener>/<target>');
  return [...(previous ?? []), target === undefined ? { listenerId } : { listenerId, target }];
}

/**
 * Polls the hub until every distribution of these key versions to these
 * destinations has ended (confirmed or failed), showing a progress bar on a
 * terminal. Exit status 0 has to mean the keys are confirmed everywhere
 * asked, not merely that this call queued nothing new.
 */
async function waitForOutcome(c: HubClient, body: api.ProgressBody, timeoutSeconds: number, json: boolean): Promise<api.ProgressResult> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const progress = new ProgressBar('waiting {bar} {value}/{total} done, {failed} failed | {duration_formatted}', { json });
  try {
    for (;;) {
      const p = await c.post('/v1/distributions/progress', api.progressResult, body);
      progress.update(p.confirmed + p.failed, p.total, { failed: p.failed });
      if (p.pending === 0) return p;
      if (Date.now() >= deadline) {
        throw new CliError('TIMEOUT', `${p.pending} of ${p.total} distributions still unconfirmed after ${timeoutSeconds} s (is \`keyhub serve\` running and the listener online?)`, {
          pending: p.pending,
          confirmed: p.confirmed,
          failed: p.failed,
          total: p.total,
        });
      }
      await sleep(POLL_MS);
    }
  } finally {
    progress.stop();
  }
}

function printResult(result: api.DistributeResultBody): void {
  const k = result.keys;
  const what = k.length === 1 ? `key ${k[0].name} version ${k[0].version} (kcv ${k[0].kcv})` : `${k.length} keys`;
  printLine(`${what}: queued ${result.queued.length}, skipped ${result.skipped.length}`);
  if (result.queued.length + result.skipped.length > 50) return;
  const rows = [...result.queued.map((d) => ({ ...d, outcome: 'queued' })), ...result.skipped.map((d) => ({ ...d, outcome: `skipped (${d.state})` }))];
  if (rows.length === 0) return;
  printTable(rows, [
    ...(k.length > 1 ? [{ header: 'key', value: (r: (typeof rows)[number]) => r.key }] : []),
    { header: 'listener', value: (r) => r.listenerId },
    { header: 'target', value: (r) => r.target },
    { header: 'outcome', value: (r) => r.outcome },
  ]);
}

export function registerDistributeCommand(program: Command): void {
  program
    .command('distribute')
    .description('push key versions to listeners in one call; already confirmed or in-flight destinations are left alone')
    .argument('[keys...]', 'key names (one call for all of them)')
    .option('--key-prefix <prefix>', 'every key whose name starts with this prefix')
    .option('--version <n>', 'key version, with exactly one key (default: the current one)', positiveInt)
    .addOption(new Option('--to <listener[/target]>', 'destination; repeatable; without /target every target of the listener').argParser(collectDestination).conflicts('toAll'))
    .addOption(new Option('--to-all', 'every target of every active listener'))
    .option('--wait', 'wait until every destination is confirmed or failed (and, for a sensitive key, for the approvals first)')
    .option('--timeout <seconds>', 'with --wait: give up after this long', positiveSeconds, 60)
    .action(async (keyNames: string[], opts: DistributeOptions, cmd: Command) => {
      const g = globals(cmd);
      if (keyNames.length > 0 === (opts.keyPrefix !== undefined)) throw new CliError('INPUT_INVALID', 'give key names or --key-prefix, not both');
      if (opts.version !== undefined && keyNames.length !== 1) throw new CliError('INPUT_INVALID', '--version needs exactly one key name');
      if (!opts.toAll && !opts.to?.length) throw new CliError('INPUT_INVALID', 'give --to <listener>[/<target>] (repeatable) or --to-all');
      const to = opts.toAll ? ('all' as const) : opts.to!;
      const c = await client();
      const body = opts.keyPrefix !== undefined ? { keyPrefix: opts.keyPrefix, to } : { keys: keyNames.map((name) => ({ name, ...(opts.version ? { version: opts.version } : {}) })), to };
      const r = await c.call('POST', '/v1/distributions', { 200: api.distributeResult, 202: api.approvalPending }, body);
      let result: api.DistributeResultBody;
      if (r.status === 202) {
        if (!opts.wait) return g.json ? printJson(r.body) : printPending(r.body.approval);
        if (!g.json) printPending(r.body.approval);
        const done = await waitForRequest(c, r.body.approval.id, opts.timeout, g.json);
        const doc = JSON.parse(done.canonical) as { keys: Array<{ name: string; version: number; kcv: string }>; destinations: Array<{ listenerId: string; target: string }> };
        result = { keys: doc.keys.map((k) => ({ name: k.name, version: k.version, kcv: k.kcv })), queued: [], skipped: [], approvalId: done.id };
        if (!g.json) printLine(`request ${done.id} approved and executed`);
        const outcome = await waitForOutcome(
          c,
          { keys: doc.keys.map((k) => ({ name: k.name, version: k.version })), to: doc.destinations.map((d) => ({ listenerId: d.listenerId, target: d.target })) },
          opts.timeout,
          g.json,
        );
        return finish(g.json, result, outcome);
      }
      result = r.body;
      if (!opts.wait) return g.json ? printJson(result) : printResult(result);
      if (!g.json) printResult(result);
      const outcome = await waitForOutcome(c, { keys: result.keys.map((k) => ({ name: k.name, version: k.version })), to }, opts.timeout, g.json);
      finish(g.json, result, outcome);
    });
}

function finish(json: boolean, result: api.DistributeResultBody, outcome: api.ProgressResult): void {
  if (json) printJson({ ...result, outcome });
  else if (outcome.failed === 0) printLine(`confirmed ${outcome.confirmed}/${outcome.total}`);
  else {
    printLine(`confirmed ${outcome.confirmed}/${outcome.total}, failed ${outcome.failed}:`);
    printTable(outcome.failures, [
      { header: 'key', value: (r) => r.key },
      { header: 'listener', value: (r) => r.listenerId },
      { header: 'target', value: (r) => r.target },
      { header: 'error', value: (r) => r.errorCode },
    ]);
  }
  if (outcome.failed) process.exitCode = 1;
}
