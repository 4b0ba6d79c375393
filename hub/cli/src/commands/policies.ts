import { Argument, type Command } from 'commander';
import { z } from 'zod';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printJson, printLine, printTable } from '../output';

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('approval policies: which actions need M approvals from the approvers');

  policy.command('list').action(async (_opts: unknown, cmd: Command) => {
    const g = globals(cmd);
    const { policies } = await (await client()).get('/v1/policies', api.policyList);
    if (g.json) return printJson(policies);
    printTable(policies, [
      { header: 'action', value: (p) => p.action },
      { header: 'state', value: (p) => (p.enabled ? 'on' : 'off') },
      { header: 'approvals', value: (p) => `${p.required} of ${p.approvers}` },
      { header: 'updated', value: (p) => (p.updatedAt ? `${p.updatedAt} by ${p.updatedBy}` : '') },
    ]);
  });

  policy
    .command('set')
    .description('change a policy; once a policy is on, changing or switching it off needs its own quorum')
    .addArgument(new Argument('<action>', 'the action').choices(api.POLICY_ACTIONS))
    .option('--required <m>', 'approvals needed')
    .option('--enable', 'switch it on (needs at least M active approvers)')
    .option('--disable', 'switch it off')
    .action(async (action: string, opts: { required?: string; enable?: boolean; disable?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      if (opts.enable && opts.disable) throw new CliError('INPUT_INVALID', 'give --enable or --disable, not both');
      const body = { required: opts.required === undefined ? undefined : Number(opts.required), enabled: opts.enable ? true : opts.disable ? false : undefined };
      const r = await (await client()).call('PUT', `/v1/policies/${action}`, { 200: z.strictObject({ policy: api.policyView }), 202: api.approvalPending }, body);
      if (g.json) return printJson(r.body);
      if (r.status === 202) return printPending(r.body.approval);
      const p = r.body.policy;
      printLine(`policy ${p.action}: ${p.enabled ? 'on' : 'off'}, ${p.required} approvals (${p.approvers} approvers)`);
    });
}
