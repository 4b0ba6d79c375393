import type { Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine, printTable, terminalSafe } from '../output';

/*
 * Distribution policies. `keyhub policy` is the approval policies' command,
 * so these are `keyhub placement ...`: "where key K must be".
 */

/** `k=v` arguments as a label map. */
export function parseLabels(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new CliError('INPUT_INVALID', `"${p}" is not key=value`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

const labelText = (l: Record<string, string> | null): string =>
  l
    ? Object.entries(l)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
    : '';

/** `keyhub listener label <id> k=v ... [--remove k ...]` (registered under `listener`). */
export function registerLabelCommand(listener: Command): void {
  listener
    .command('label')
    .description('set labels on a listener (k=v ...) and remove others (--remove k); placements select sites by label')
    .argument('<id>', 'listener id')
    .argument('[labels...]', 'labels to set, as key=value')
    .option('--remove <key...>', 'label keys to remove')
    .action(async (id: string, labels: string[], opts: { remove?: string[] }, cmd: Command) => {
      const g = globals(cmd);
      const body = { set: parseLabels(labels), ...(opts.remove ? { remove: opts.remove } : {}) };
      const r = (await (await client()).call('PATCH', `/v1/listeners/${encodeURIComponent(id)}/labels`, { 200: api.labelsView }, body)).body;
      if (g.json) return printJson(r);
      printFields([
        ['listener', r.listenerId],
        ['labels', terminalSafe(labelText(r.labels)) || '(none)'],
      ]);
    });
}

export function registerPlacementCommands(program: Command): void {
  const placement = program.command('placement').description('distribution policies: which sites and targets must hold a key (the hub keeps them true)');

  placement
    .command('create')
    .description('key K, its current version, must be at these sites (by id and/or labels) and targets')
    .argument('<name>', 'name of the policy')
    .requiredOption('--key <name>', 'the key')
    .option('--listener <id...>', 'sites by id')
    .option('--selector <k=v...>', 'sites by labels: every active listener carrying all of them')
    .option('--target <name...>', 'target names at each site (default: every target)')
    .option('--no-future-versions', 'pin the current version: rotation does not follow')
    .option('--no-future-sites', 'only the sites matching now; a later match needs a new approval (sensitive keys) or is not covered')
    .option('--destroy-extras', 'destroy versions of the key at covered sites that the policy does not call for')
    .action(
      async (
        name: string,
        opts: { key: string; listener?: string[]; selector?: string[]; target?: string[]; futureVersions: boolean; futureSites: boolean; destroyExtras?: boolean },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const body: api.CreatePlacementBody = {
          name,
          key: opts.key,
          ...(opts.listener ? { listeners: opts.listener } : {}),
          ...(opts.selector ? { selector: parseLabels(opts.selector) } : {}),
          ...(opts.target ? { targets: opts.target } : {}),
          futureVersions: opts.futureVersions,
          futureSites: opts.futureSites,
          destroyExtras: !!opts.destroyExtras,
        };
        const r = await (await client()).call('POST', '/v1/placements', { 201: api.createPlacementResult, 202: api.approvalPending }, body);
        if (g.json) return printJson(r.body);
        if (r.status === 202) return printPending(r.body.approval);
        printPlacement(r.body.placement);
        printLine('The hub reconciles it now and on its schedule: `keyhub placement show` lists where it placed the key.');
      },
    );

  placement
    .command('list')
    .description('every placement')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const { placements } = await (await client()).get('/v1/placements', api.placementList);
      if (g.json) return printJson(placements);
      printTable(
        placements,
        [
          { header: 'name', value: (p) => p.name },
          { header: 'key', value: (p) => p.key },
          { header: 'version', value: (p) => (p.futureVersions ? `${p.version}+` : p.version) },
          { header: 'listeners', value: (p) => terminalSafe(p.listeners.join(',')) },
          { header: 'selector', value: (p) => terminalSafe(labelText(p.selector)) },
          { header: 'targets', value: (p) => terminalSafe(p.targets.join(',') || '*') },
          { header: 'later sites', value: (p) => (p.futureSites ? 'yes' : 'no') },
          { header: 'pending', value: (p) => p.pendingApproval ?? '' },
        ],
        { empty: 'no placements' },
      );
    });

  placement
    .command('show')
    .description('one placement, with the sites it has placed its key at')
    .argument('<name>', 'name of the policy')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const p = await (await client()).get(`/v1/placements/${encodeURIComponent(name)}`, api.placementView);
      if (g.json) return printJson(p);
      printPlacement(p);
      printTable(
        p.placed ?? [],
        [
          { header: 'listener', value: (s) => s.listenerId },
          { header: 'target', value: (s) => s.target },
          { header: 'version', value: (s) => s.version, align: 'right' },
        ],
        { empty: 'placed nowhere yet' },
      );
    });

  placement
    .command('update')
    .description('change the sites (ids, selector) and targets a placement names; the hub reconciles right after')
    .argument('<name>', 'name of the policy')
    .option('--listener <id...>', 'sites by id (replaces the list)')
    .option('--selector <k=v...>', 'sites by labels (replaces the selector)')
    .option('--no-selector', 'no label selector any more')
    .option('--target <name...>', 'target names (replaces the list)')
    .action(async (name: string, opts: { listener?: string[]; selector?: string[] | false; target?: string[] }, cmd: Command) => {
      const g = globals(cmd);
      const body: api.UpdatePlacementBody = {
        ...(opts.listener ? { listeners: opts.listener } : {}),
        ...(opts.selector === false ? { selector: null } : opts.selector ? { selector: parseLabels(opts.selector) } : {}),
        ...(opts.target ? { targets: opts.target } : {}),
      };
      const p = (await (await client()).call('PATCH', `/v1/placements/${encodeURIComponent(name)}`, { 200: api.placementView }, body)).body;
      if (g.json) return printJson(p);
      printPlacement(p);
    });

  placement
    .command('delete')
    .description('delete a placement (keys stay where they are unless --destroy)')
    .argument('<name>', 'name of the policy')
    .option('--destroy', 'destroy what it placed, where no other placement of the key wants it')
    .action(async (name: string, opts: { destroy?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const r = (await (await client()).call('DELETE', `/v1/placements/${encodeURIComponent(name)}${opts.destroy ? '?destroy=true' : ''}`, { 200: api.deletePlacementResult })).body;
      if (g.json) return printJson(r);
      printLine(`placement ${r.name} deleted${opts.destroy ? `; ${r.destroyCommands} destroy command(s) queued` : ''}`);
    });

  placement
    .command('reconcile')
    .description('reconcile every placement now (the hub also does it on its schedule)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).post('/v1/placements/reconcile', api.reconcileResult);
      if (g.json) return printJson(r);
      if (r.skipped) return printLine('another hub replica is reconciling right now; it covers this request');
      printFields([
        ['placements', r.placements],
        ['queued', r.queued],
        ['removed', r.removed],
        ['approvals requested', r.approvalsRequested],
      ]);
    });
}

function printPlacement(p: api.PlacementView): void {
  printFields([
    ['name', p.name],
    ['key', p.key],
    ['version', `${p.version}${p.futureVersions ? ' and later versions' : ' only'}`],
    ['listeners', terminalSafe(p.listeners.join(', '))],
    ['selector', terminalSafe(labelText(p.selector))],
    ['targets', terminalSafe(p.targets.join(', ') || 'every target')],
    ['sites that match later', p.futureSites ? 'covered' : 'not covered'],
    ['destroy extras', p.destroyExtras ? 'yes' : 'no'],
    ['approved sites', p.approvedSites ? terminalSafe(p.approvedSites.join(', ')) : '(no dual control)'],
    ['pending approval', p.pendingApproval],
    ['created by', p.createdBy],
  ]);
}

/** `keyhub status --drift`: open findings from the sites' signed inventories. */
export async function printDriftStatus(listener: string | undefined, json: boolean | undefined): Promise<void> {
  const report = await (await client()).get(`/v1/drift${listener ? `?listener=${encodeURIComponent(listener)}` : ''}`, api.driftReport);
  if (json) return printJson(report);
  printTable(
    report.findings,
    [
      { header: 'listener', value: (f) => f.listenerId },
      { header: 'target', value: (f) => f.target },
      { header: 'drift', value: (f) => f.kind },
      { header: 'key', value: (f) => terminalSafe(f.key ?? f.label ?? f.objectId ?? '') },
      { header: 'version', value: (f) => f.version ?? '', align: 'right' },
      { header: 'expected', value: (f) => [f.expectedKcv, f.expectedState].filter(Boolean).join(' ') },
      { header: 'reported', value: (f) => [f.reportedKcv, f.reportedState].filter(Boolean).join(' ') },
      { header: 'since', value: (f) => f.firstSeenAt },
    ],
    { empty: 'no drift' },
  );
  const c = report.counts;
  printLine(`${report.inventories.length} site(s) with an inventory; missing ${c.missing}, extra ${c.extra}, kcv mismatch ${c.kcv_mismatch}, state mismatch ${c.state_mismatch}`);
}
