import { createHash } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { countValidApprovals, decisionCounts, quorumVerdict } from '../../domain/approval-rule';
import { decisionsFor, finishRequest, requestById } from '../../store/queries/approvals';
import { APPROVED_ACTION_RUNNERS, type ActionResult, type ApprovedActionRunners, type ApprovedRun } from './approved-action';
import { approvalView, decisionFacts, parseStored, requestFacts } from './approval-view';

/**
 * Runs a request once enough valid approvals exist, counted now: in one
 * transaction it locks the request, recomputes the SHA-256 of the stored
 * bytes and compares it with the hash the approvals name, counts the
 * approvals of operators who are still active approvers, runs the action (or
 * claims it, for long work) and writes the audit event. Two approvers racing
 * to give the last approval both end up here; the row lock lets only the
 * first see a pending request, so the action runs once.
 */
@injectable()
export class ExecuteApproved {
  constructor(
    private readonly ctx: HubContext,
    @inject(APPROVED_ACTION_RUNNERS) private readonly runners: ApprovedActionRunners,
  ) {}

  async execute(requestId: string): Promise<api.ApprovalRequestView> {
    let after: { run: ApprovedRun; go: () => Promise<ActionResult> } | undefined;
    await this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const r = await requestById(m, requestId, true);
      if (!r) throw new KeyhubError('APPROVAL_NOT_FOUND', `no approval request ${requestId}`);
      if (r.state !== 'pending') return;
      const now = new Date();
      const hash = createHash('sha256').update(r.canonical).digest('hex');
      if (hash !== r.hash) {
        // The stored bytes no longer match what was approved: someone wrote to the database behind the API.
        await finishRequest(m, r.id, 'failed', null, 'APPROVAL_HASH_MISMATCH');
        await appendAudit(m, [{ actor: 'system:dual-control', action: 'approval.tampered', subject: `approval:${r.id}`, details: { storedHash: r.hash, computedHash: hash } }]);
        return;
      }
      const decisions = (await decisionsFor(m, [r.id])).map((d) => ({ row: d, facts: decisionFacts(d) }));
      const facts = requestFacts(r, hash);
      const verdict = quorumVerdict(
        decisions.map((d) => d.facts),
        facts,
        now,
      );
      if (verdict === 'wait') return;
      if (verdict !== 'run') {
        await finishRequest(m, r.id, verdict, null, null);
        await appendAudit(m, [{ actor: 'system:dual-control', action: `approval.${verdict}`, subject: `approval:${r.id}`, details: { hash } }]);
        return;
      }
      const approvers = decisions.filter((d) => decisionCounts(d.facts, facts, now)).map((d) => d.row.operator_name);
      const run: ApprovedRun = { requestId: r.id, requester: { id: r.requested_by, name: r.requested_by_name }, approvers };
      const doc = parseStored(r);
      const runner = this.runners.get(doc.action);
      if (!runner) throw new KeyhubError('INTERNAL', `no runner for approved action ${doc.action}`);
      let result: ActionResult = {};
      try {
        if (runner.runInTransaction) result = await m.transaction((inner) => runner.runInTransaction!(inner, doc, run));
      } catch (err) {
        const e = KeyhubError.from(err);
        await finishRequest(m, r.id, 'failed', null, e.code);
        await appendAudit(m, [{ actor: r.requested_by_name, action: 'approval.failed', subject: `approval:${r.id}`, details: { hash, errorCode: e.code, approvers: approvers.join(',') } }]);
        return;
      }
      await finishRequest(m, r.id, 'executed', result, null);
      await appendAudit(m, [
        {
          actor: r.requested_by_name,
          action: 'approval.executed',
          subject: `approval:${r.id}`,
          details: {
            action: doc.action,
            hash,
            approvals: countValidApprovals(
              decisions.map((d) => d.facts),
              facts,
              now,
            ),
            approvers: approvers.join(','),
            ...result,
          },
        },
      ]);
      if (runner.runAfterCommit) after = { run, go: () => runner.runAfterCommit!(doc, run) };
    });
    if (after) await this.finishLongWork(requestId, after.go);
    return this.view(requestId);
  }

  private async finishLongWork(requestId: string, go: () => Promise<ActionResult>): Promise<void> {
    let result: ActionResult | undefined;
    let errorCode: string | null = null;
    try {
      result = await go();
    } catch (err) {
      errorCode = KeyhubError.from(err).code;
    }
    await this.ctx.ds.transaction(async (m) => {
      await finishRequest(m, requestId, errorCode ? 'failed' : 'executed', result ?? null, errorCode);
      if (errorCode) await appendAudit(m, [{ actor: 'system:dual-control', action: 'approval.failed', subject: `approval:${requestId}`, details: { errorCode } }]);
    });
  }

  async view(requestId: string): Promise<api.ApprovalRequestView> {
    const r = await requestById(this.ctx.ds.manager, requestId);
    if (!r) throw new KeyhubError('APPROVAL_NOT_FOUND', `no approval request ${requestId}`);
    return approvalView(r, await decisionsFor(this.ctx.ds.manager, [r.id]));
  }
}
