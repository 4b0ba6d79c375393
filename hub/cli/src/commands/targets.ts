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
    .description('the targets of a listener: kind, approval (or the signed update awaiting it), health and when it was heard, the KEK each is served under, inventory counts')
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

  target
    .command('rotate-kek')
    .description("rotate a PKCS#11 target's own KEK: the next one is sent wrapped under the current one and used once the site confirms its KCV")
    .argument('<listener>', 'listener id')
    .argument('<target>', 'target name')
    .option('--reason <text>', 'why (kept in the audit trail)')
    .action(async (id: string, name: string, opts: { reason?: string }, cmd: Command) => {
      const g = globals(cmd);
      const r = await (
        await client()
      ).post(`/v1/listeners/${encodeURIComponent(id)}/targets/${encodeURIComponent(name)}/rotate-kek`, api.rotateTargetKekResult, opts.reason ? { reason: opts.reason } : {}, 202);
      if (g.json) return printJson(r);
      printFields([
        ['listener', r.listenerId],
        ['target', terminalSafe(r.target)],
        ['target KEK', r.kekId],
        ['version', r.version],
        ['kek kcv', r.kcv],
        ['wrapped under', `${r.wrappedUnder.kekId} (v${r.wrappedUnder.version})`],
        ['site destroys', r.retires.map((x) => `v${x.version}`).join(', ') || '-'],
      ]);
      printLine('Packages for this target use the new KEK once the site confirms this KCV from the target token; until then the current one.');
    });

  target
    .command('approve-update')
    .description("approve a site's signed update adding or removing a target (read its kind and settings in `target list` first)")
    .argument('<listener>', 'listener id')
    .argument('<target>', 'target name')
    .requiredOption('--update <id>', 'the update id shown by `keyhub listener target list` (a newer update from the site is not approved by this one)')
    .action(async (id: string, name: string, opts: { update: string }, cmd: Command) => {
      const g = globals(cmd);
      const res = await (
        await client()
      ).call(
        'POST',
        `/v1/listeners/${encodeURIComponent(id)}/targets/${encodeURIComponent(name)}/approve-update`,
        { 200: api.approveTargetUpdateResult, 202: api.approvalPending },
        { updateId: opts.update },
      );
      if (g.json) return printJson(res.body);
      if (res.status === 202) return printPending(res.body.approval);
      const r = res.body;
      printFields([
        ['listener', r.listenerId],
        ['target', terminalSafe(r.target)],
        [r.op === 'add' ? 'added' : 'removed', r.kind],
        ...(r.op === 'remove'
          ? ([
              ['distributions retired', r.retired.distributions],
              ['target KEKs revoked', r.retired.keks],
            ] as Array<[string, number]>)
          : []),
      ]);
      printLine(r.op === 'add' ? 'The target receives keys whose policy allows its kind from now on.' : 'The hub sends nothing more to this target.');
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
      { header: 'approval', value: (t) => t.approval },
      { header: 'health', value: (t) => (t.health.healthy === null ? '-' : t.health.healthy ? 'ok' : `down${t.health.detail ? `: ${terminalSafe(t.health.detail)}` : ''}`) },
      { header: 'heard', value: (t) => t.health.at ?? '' },
      { header: 'kek', value: (t) => t.kek.scope },
      { header: 'kek state', value: (t) => t.kek.state },
      { header: 'version', value: (t) => t.kek.version ?? '' },
      { header: 'kcv', value: (t) => t.kek.kcv ?? '' },
      { header: 'items', value: (t) => t.inventory.items, align: 'right' },
      { header: 'transport fingerprint', value: (t) => t.kek.transportFingerprint ?? '' },
    ],
    { empty: 'no targets' },
  );
  for (const t of r.targets.filter((x) => x.update)) {
    const u = t.update!;
    const settings = Object.entries(u.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    printLine(terminalSafe(`update ${u.id}: ${u.op} ${u.kind} target ${t.name}${settings ? ` (${settings})` : ''}, awaiting approval`));
  }
}
