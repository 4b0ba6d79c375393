import type { Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { printFields, printJson, printLine, printTable, terminalSafe } from '../output';

/** `keyhub listener target ...`: a site's targets and their own KEKs (issue 12). */
export function registerTargetCommands(listener: Command): void {
  const target = listener.command('target').description("a listener's targets and the KEKs installed in their tokens");

  target
    .command('list')
    .description('the targets of a listener: the KEK each is served under, its state, the transport key fingerprint to compare, inventory counts')
    .argument('<listener>', 'listener id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      if (g.json) return printJson(await (await client()).get(`/v1/listeners/${encodeURIComponent(id)}/targets`, api.targetList));
      await printTargets(id);
    });

  target
    .command('approve')
    .description("approve a target's own KEK after comparing the transport key fingerprint with the one shown at the site")
    .argument('<listener>', 'listener id')
    .argument('<target>', 'target name')
    .requiredOption('--fingerprint <fp>', 'transport key fingerprint as printed by `keyhub-listener target request` (case and separators ignored)')
    .action(async (id: string, name: string, opts: { fingerprint: string }, cmd: Command) => {
      const g = globals(cmd);
      const res = await (
        await client()
      ).call(
        'POST',
        `/v1/listeners/${encodeURIComponent(id)}/targets/${encodeURIComponent(name)}/approve`,
        { 200: api.approveTargetKekResult, 202: api.approvalPending },
        { fingerprint: opts.fingerprint },
      );
      if (g.json) return printJson(res.body);
      if (res.status === 202) return printPending(res.body.approval);
      const r = res.body;
      printFields([
        ['listener', r.listenerId],
        ['target', r.target],
        ['target KEK', r.kekId],
        ['version', r.version],
        ['kek kcv', r.kcv],
      ]);
      printLine('Packages for this target are wrapped under this KEK once the site confirms this KCV from the target token.');
    });
}

/** The targets of a listener as a table (also under `keyhub listener show`). */
export async function printTargets(id: string): Promise<void> {
  const r = await (await client()).get(`/v1/listeners/${encodeURIComponent(id)}/targets`, api.targetList);
  printTable(
    r.targets,
    [
      { header: 'target', value: (t) => terminalSafe(t.name) },
      { header: 'kind', value: (t) => t.kind },
      { header: 'kek', value: (t) => t.kek.scope },
      { header: 'kek state', value: (t) => t.kek.state },
      { header: 'version', value: (t) => t.kek.version ?? '' },
      { header: 'kcv', value: (t) => t.kek.kcv ?? '' },
      { header: 'items', value: (t) => t.inventory.items, align: 'right' },
      { header: 'transport fingerprint', value: (t) => t.kek.transportFingerprint ?? '' },
    ],
    { empty: 'no targets' },
  );
}
