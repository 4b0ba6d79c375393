import type { Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine, terminalSafe } from '../output';

function partCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 2 || n > 5) throw new CliError('INPUT_INVALID', '--parts is 2 or 3 for XOR components, up to 5 for Shamir shares');
  return n;
}

/**
 * `keyhub listener root-kek components | component`: a site's root KEK by
 * key components (split knowledge). A key officer asks, naming one
 * custodian per part; the custodians approve; then each fetches their own
 * part, once, into their own terminal.
 */
export function registerRootKekCeremonyCommands(listener: Command): void {
  const rootKek = listener.command('root-kek').description('a site root KEK set up by key components, split among custodians');
  rootKek
    .command('components')
    .description('approve an enrollment with a root KEK in parts, one per custodian: XOR components (all needed) or, with --threshold, Shamir shares')
    .argument('<id>', 'listener id')
    .requiredOption('--fingerprint <fp>', 'the enrollment fingerprint read at the site')
    .requiredOption('--parts <n>', 'number of parts: 2 or 3 XOR components, or 2 to 5 Shamir shares', partCount)
    .requiredOption('--custodians <names>', 'comma-separated operator names (approvers), one per part, in part order')
    .option('--threshold <m>', 'Shamir: any <m> of the parts rebuild the key (without it: XOR, all parts needed)', partCount)
    .action(async (id: string, opts: { fingerprint: string; parts: number; custodians: string; threshold?: number }, cmd: Command) => {
      const g = globals(cmd);
      const custodians = opts.custodians
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const body = { fingerprint: opts.fingerprint, parts: opts.parts, custodians, ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}) };
      const r = await (await client()).post(`/v1/listeners/${encodeURIComponent(id)}/root-kek/components`, api.approvalPending, body, 202);
      if (g.json) return printJson(r);
      printPending(r.approval);
      printLine(`Only the custodians decide (${custodians.map(terminalSafe).join(', ')}); once all have approved, each fetches their own part: keyhub listener root-kek component ${terminalSafe(id)}`);
    });

  rootKek
    .command('component')
    .description('as a custodian: fetch your own part of the site root KEK, once, with its KCV (shown to you only; take it to the site yourself)')
    .argument('<id>', 'listener id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).post(`/v1/listeners/${encodeURIComponent(id)}/root-kek/components/mine`, api.rootKekPartView, {});
      if (g.json) return printJson(r);
      const what = r.scheme === 'xor' ? `component ${r.part} of ${r.parts} (XOR: all ${r.parts} needed)` : `share ${r.part} of ${r.parts} (Shamir: any ${r.threshold} rebuild the key)`;
      printLine(`root KEK ${what} for listener ${terminalSafe(r.listenerId)}, custodian ${terminalSafe(r.custodian)}`);
      printFields([
        [r.scheme === 'xor' ? 'component' : 'share', r.component],
        ['kcv', r.kcv],
        ['root KEK kcv', r.kekKcv],
      ]);
      printLine('Shown once and never again: write it down, keep it to yourself, and enter it at the site with `keyhub-listener root-kek enter`.');
    });
}
