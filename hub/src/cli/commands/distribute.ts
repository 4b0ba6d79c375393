import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { KeyhubError } from '@keyhub/shared';
import { Distribute, type Destination, type DistributeResult, type DistributionRef } from '../../domain/distribute';
import { DistributionProgress } from '../../domain/distribution-progress';
import { printJson, printLine, printTable, ProgressBar } from '../output';
import { globalOptions, withRuntime } from '../runtime';

interface DistributeOptions {
  version?: number;
  keyPrefix?: string;
  to?: Destination[];
  toAll?: boolean;
  wait?: boolean;
  timeout: number;
}

interface WaitOutcome {
  total: number;
  confirmed: number;
  failed: Array<{ key: string; listenerId: string; target: string; errorCode: string }>;
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
function collectDestination(value: string, previous: Destination[] | undefined): Destination[] {
  const slash = value.indexOf('/');
  const listenerId = slash < 0 ? value : value.slice(0, slash);
  const target = slash < 0 ? undefined : value.slice(slash + 1);
  if (!listenerId || target === '') throw new InvalidArgumentError('expected <listener> or <listener>/<target>');
  return [...(previous ?? []), target === undefined ? { listenerId } : { listenerId, target }];
}

/**
 * Polls until every tracked distribution has reached an end state. Skipped
 * destinations that are still in flight from an earlier call are tracked too:
 * exit status 0 has to mean the key is confirmed everywhere that was asked,
 * not merely that this call queued nothing new.
 */
async function waitForOutcome(progressOf: DistributionProgress, result: DistributeResult, timeoutSeconds: number, json: boolean): Promise<WaitOutcome> {
  const tracked = new Map<string, DistributionRef>(
    [...result.queued, ...result.skipped.filter((s) => s.state === 'queued' || s.state === 'sent')].map((d) => [d.distributionId, d]),
  );
  const alreadyConfirmed = result.skipped.filter((s) => s.state === 'confirmed').length;
  const total = tracked.size + alreadyConfirmed;
  const deadline = Date.now() + timeoutSeconds * 1000;
  const progress = new ProgressBar('waiting {bar} {value}/{total} done, {failed} failed | {duration_formatted}', { json });
  try {
    for (;;) {
      let confirmed = alreadyConfirmed;
      let pending = 0;
      const failed: WaitOutcome['failed'] = [];
      for (const row of await progressOf.execute([...tracked.keys()])) {
        const d = tracked.get(row.id)!;
        if (row.state === 'confirmed') confirmed++;
        else if (row.state === 'failed') failed.push({ key: d.key, listenerId: d.listenerId, target: d.target, errorCode: row.errorCode ?? 'INTERNAL' });
        else pending++;
      }
      progress.update(confirmed + failed.length, total, { failed: failed.length });
      if (pending === 0) return { total, confirmed, failed };
      if (Date.now() >= deadline) {
        throw new KeyhubError('TIMEOUT', `${pending} of ${total} distributions still unconfirmed after ${timeoutSeconds} s (is \`keyhub serve\` running and the listener online?)`, {
          details: { pending, confirmed, failed: failed.length, total },
        });
      }
      await sleep(POLL_MS);
    }
  } finally {
    progress.stop();
  }
}

function printResult(result: DistributeResult): void {
  const k = result.keys;
  const what = k.length === 1 ? `key ${k[0].name} version ${k[0].version} (kcv ${k[0].kcv})` : `${k.length} keys`;
  printLine(`${what}: queued ${result.queued.length}, skipped ${result.skipped.length}`);
  // A bulk push is summarized; the per-destination table is for pushes a person can read.
  if (result.queued.length + result.skipped.length > 50) return;
  const rows = [
    ...result.queued.map((d) => ({ ...d, outcome: 'queued' })),
    ...result.skipped.map((d) => ({ ...d, outcome: `skipped (${d.state})` })),
  ];
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
    .option('--wait', 'wait until every destination is confirmed or failed')
    .option('--timeout <seconds>', 'with --wait: give up after this long', positiveSeconds, 60)
    .action(async (keyNames: string[], opts: DistributeOptions, cmd: Command) => {
      const g = globalOptions(cmd);
      if ((keyNames.length > 0) === (opts.keyPrefix !== undefined)) throw new KeyhubError('INPUT_INVALID', 'give key names or --key-prefix, not both');
      if (opts.version !== undefined && keyNames.length !== 1) throw new KeyhubError('INPUT_INVALID', '--version needs exactly one key name');
      if (!opts.toAll && !opts.to?.length) throw new KeyhubError('INPUT_INVALID', 'give --to <listener>[/<target>] (repeatable) or --to-all');
      await withRuntime(g, async (rt) => {
        const result = await rt.container.resolve(Distribute).execute({
          keys: opts.keyPrefix !== undefined ? { prefix: opts.keyPrefix } : keyNames.map((name) => ({ name, version: opts.version })),
          to: opts.toAll ? 'all' : (opts.to ?? []),
          actor: g.actor,
        });
        if (!opts.wait) {
          if (g.json) printJson(result);
          else printResult(result);
          return;
        }
        if (!g.json) printResult(result);
        const outcome = await waitForOutcome(rt.container.resolve(DistributionProgress), result, opts.timeout, g.json);
        if (g.json) printJson({ ...result, outcome });
        else if (outcome.failed.length === 0) printLine(`confirmed ${outcome.confirmed}/${outcome.total}`);
        else {
          printLine(`confirmed ${outcome.confirmed}/${outcome.total}, failed ${outcome.failed.length}:`);
          printTable(outcome.failed, [
            { header: 'key', value: (r) => r.key },
            { header: 'listener', value: (r) => r.listenerId },
            { header: 'target', value: (r) => r.target },
            { header: 'error', value: (r) => r.errorCode },
          ]);
        }
        if (outcome.failed.length) process.exitCode = 1;
      });
    });
}
