import type { api } from '@keyhub/protocol';
import { printFields, printLine } from './output';

/** What a requester sees when an action needs approvals first. */
export function printPending(a: api.ApprovalRequestView): void {
  printLine(`approval required: ${a.summary}`);
  printFields([
    ['request', a.id],
    ['hash', a.hash],
    ['needs', `${a.required} approval(s) from approvers other than ${a.requestedBy}`],
    ['expires', a.expiresAt],
  ]);
  printLine(`Approvers: keyhub approvals show ${a.id}, then keyhub approvals approve ${a.id} --hash ${a.hash}`);
}

export function printRequest(a: api.ApprovalRequestView, withCanonical: boolean): void {
  printFields([
    ['request', a.id],
    ['action', a.action],
    ['summary', a.summary],
    ['state', a.state],
    ['requested by', `${a.requestedBy} at ${a.createdAt}`],
    ['approvals', `${a.approvals} of ${a.required} (counted now)`],
    ['expires', a.expiresAt],
    ['hash', a.hash],
    ...(a.errorCode ? ([['error', a.errorCode]] as const) : []),
    ...(a.result
      ? ([
          [
            'result',
            Object.entries(a.result)
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
          ],
        ] as const)
      : []),
  ]);
  for (const d of a.decisions) printLine(`  ${d.decision} by ${d.operator} at ${d.at}${d.counts ? '' : ' (does not count now)'}`);
  if (withCanonical) {
    printLine('canonical request (RFC 8785; its SHA-256 is the hash above):');
    printLine(a.canonical);
  }
}
