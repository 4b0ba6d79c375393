import { setTimeout as sleep } from 'node:timers/promises';
import { createInterface } from 'node:readline/promises';
import { createHash } from 'node:crypto';
import { Option, type Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printRequest } from '../approval-output';
import type { HubClient } from '../client';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine, printTable, ProgressBar } from '../output';

/** Waits until a request has left `pending`; only `executed` is a success. */
export async function waitForRequest(c: HubClient, id: string, timeoutSeconds: number, json: boolean): Promise<api.ApprovalRequestView> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const bar = new ProgressBar('approvals {bar} {value}/{total} | {duration_formatted}', { json });
  try {
    for (;;) {
      const r = await c.get(`/v1/approvals/${id}`, api.approvalRequestView);
      bar.update(r.approvals, r.required);
      if (r.state === 'executed') return r;
      if (r.state !== 'pending') throw new CliError('APPROVAL_STATE_INVALID', `request ${id} ended ${r.state}${r.errorCode ? ` (${r.errorCode})` : ''}`, { state: r.state });
      if (Date.now() >= deadline) throw new CliError('TIMEOUT', `request ${id} has ${r.approvals} of ${r.required} approvals after ${timeoutSeconds} s`);
      await sleep(500);
    }
  } finally {
    bar.stop();
  }
}

/**
 * The hash an approver approves: given with --hash, or, on a terminal, the
 * one of the request just shown, once the approver has read it and said yes.
 * Either way the client checks that the canonical bytes it received hash to
 * it, so a hub cannot show one thing and record another.
 */
async function confirmedHash(c: HubClient, id: string, given: string | undefined, decision: string): Promise<string> {
  const r = await c.get(`/v1/approvals/${id}`, api.approvalRequestView);
  const computed = createHash('sha256').update(r.canonical, 'utf8').digest('hex');
  if (computed !== r.hash) throw new CliError('APPROVAL_HASH_MISMATCH', `the hub's request ${id} does not hash to the hash it states`);
  if (given !== undefined) return given.toLowerCase();
  if (!process.stdin.isTTY) throw new CliError('INPUT_INVALID', `give --hash <sha256> after reading \`keyhub approvals show ${id}\``);
  printRequest(r, true);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${decision} this request (hash ${r.hash})? [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError('INPUT_INVALID', 'not confirmed; nothing was sent');
  } finally {
    rl.close();
  }
  return r.hash;
}

export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('dual control: requests waiting for approvers');

  approvals
    .command('list')
    .description('requests, newest first')
    .addOption(new Option('--state <state>', 'only requests in this state').choices(api.APPROVAL_STATES))
    .action(async (opts: { state?: string }, cmd: Command) => {
      const g = globals(cmd);
      const { requests } = await (await client()).get(`/v1/approvals${opts.state ? `?state=${opts.state}` : ''}`, api.approvalList);
      if (g.json) return printJson(requests);
      printTable(
        requests,
        [
          { header: 'id', value: (r) => r.id },
          { header: 'state', value: (r) => r.state },
          { header: 'approvals', value: (r) => `${r.approvals}/${r.required}` },
          { header: 'requested by', value: (r) => r.requestedBy },
          { header: 'summary', value: (r) => r.summary },
        ],
        { empty: 'no requests' },
      );
    });

  approvals
    .command('show')
    .description('one request: its canonical bytes, its hash and the decisions so far')
    .argument('<id>', 'request id')
    .option('--wait', 'wait until the request has been executed (exit 0) or ended otherwise')
    .option('--timeout <seconds>', 'with --wait: give up after this long', '600')
    .action(async (id: string, opts: { wait?: boolean; timeout: string }, cmd: Command) => {
      const g = globals(cmd);
      const c = await client();
      const r = opts.wait ? await waitForRequest(c, id, Number(opts.timeout), g.json) : await c.get(`/v1/approvals/${id}`, api.approvalRequestView);
      if (g.json) return printJson(r);
      printRequest(r, true);
    });

  for (const decision of ['approve', 'reject'] as const) {
    approvals
      .command(decision)
      .description(`${decision} a request after reading it; bound to the request's hash`)
      .argument('<id>', 'request id')
      .option('--hash <sha256>', 'the hash shown by `keyhub approvals show` (asked for interactively on a terminal)')
      .option('--comment <text>', 'recorded in the audit trail')
      .action(async (id: string, opts: { hash?: string; comment?: string }, cmd: Command) => {
        const g = globals(cmd);
        const c = await client();
        const hash = await confirmedHash(c, id, opts.hash, decision);
        const r = await c.post(`/v1/approvals/${id}/${decision}`, api.approvalRequestView, { hash, ...(opts.comment ? { comment: opts.comment } : {}) });
        if (g.json) return printJson(r);
        printLine(`${decision === 'approve' ? 'approved' : 'rejected'}: request ${r.id} is ${r.state} (${r.approvals} of ${r.required} approvals count)`);
        if (r.errorCode) printLine(`execution failed: ${r.errorCode}`);
      });
  }

  approvals
    .command('cancel')
    .description('withdraw your own pending request')
    .argument('<id>', 'request id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).post(`/v1/approvals/${id}/cancel`, api.approvalRequestView);
      if (g.json) return printJson(r);
      printLine(`request ${r.id} is ${r.state}`);
    });

  approvals
    .command('pickup')
    .description('pick up, once, the token an approved request of yours created (hand it over out of band)')
    .argument('<id>', 'request id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const { token } = await (await client()).post(`/v1/approvals/${id}/pickup`, api.createTokenPickup);
      if (g.json) return printJson(token);
      printFields([
        ['operator', token.operator],
        ['token id', token.id],
        ['expires', token.expiresAt],
      ]);
      printLine('token (shown once; hand it to the operator, who should replace it with `keyhub token create`):');
      printLine(token.token);
    });
}
