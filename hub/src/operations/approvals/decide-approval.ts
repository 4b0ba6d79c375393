import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { namedDeciders } from '../../domain/approval-actions';
import { finishRequest, insertDecision, requestById } from '../../store/queries/approvals';
import { ExecuteApproved } from './execute-approved';
import { parseStored } from './approval-view';

/**
 * An approver's decision on a request, bound to the hash they were shown.
 * The requester cannot decide on their own request, each approver decides
 * once, and one rejection ends the request. An approval that completes the
 * quorum runs the action (see ExecuteApproved, which counts again).
 */
@injectable()
export class DecideApproval {
  constructor(
    private readonly ctx: HubContext,
    private readonly executeApproved: ExecuteApproved,
  ) {}

  async execute(input: { requestId: string; decision: 'approve' | 'reject'; hash: string; comment?: string }, principal: Principal): Promise<api.ApprovalRequestView> {
    if (!principal.roles.includes('approver')) throw new KeyhubError('PERMISSION_DENIED', 'only approvers decide on requests');
    await this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const r = await requestById(m, input.requestId, true);
      if (!r) throw new KeyhubError('APPROVAL_NOT_FOUND', `no approval request ${input.requestId}`);
      if (r.state === 'pending' && r.expires_at.getTime() <= Date.now()) {
        await finishRequest(m, r.id, 'expired', null, null);
        await appendAudit(m, [{ actor: 'system:dual-control', action: 'approval.expired', subject: `approval:${r.id}`, details: { hash: r.hash } }]);
        return;
      }
      if (r.state !== 'pending') throw new KeyhubError('APPROVAL_STATE_INVALID', `request ${r.id} is ${r.state}`);
      if (r.requested_by === principal.operatorId) throw new KeyhubError('APPROVAL_SELF', 'you cannot decide on your own request');
      if (input.hash !== r.hash) throw new KeyhubError('APPROVAL_HASH_MISMATCH', `request ${r.id} has hash ${r.hash}, not the one given`);
      // Some requests name who decides them (approval-actions.ts); then no other approver does.
      const named = namedDeciders(parseStored(r));
      if (named && !named.includes(principal.name)) throw new KeyhubError('APPROVER_NOT_CUSTODIAN', `request ${r.id} is decided by ${named.join(', ')} only`);
      const expiresAt = new Date(Date.now() + this.ctx.config.approvals.approvalTtlSeconds * 1000);
      const inserted = await insertDecision(m, { requestId: r.id, operatorId: principal.operatorId, decision: input.decision, requestHash: input.hash, expiresAt });
      if (!inserted) throw new KeyhubError('APPROVAL_DUPLICATE', `${principal.name} has already decided on request ${r.id}`);
      const details = { hash: r.hash, action: r.action, ...(input.comment ? { comment: input.comment } : {}) };
      await appendAudit(m, [{ actor: principal.name, action: input.decision === 'approve' ? 'approval.approved' : 'approval.rejected', subject: `approval:${r.id}`, details }]);
      if (input.decision === 'reject') await finishRequest(m, r.id, 'rejected', null, null);
    });
    const view = await this.executeApproved.view(input.requestId);
    if (view.state === 'expired') throw new KeyhubError('APPROVAL_STATE_INVALID', `request ${input.requestId} has expired`);
    return input.decision === 'approve' ? this.executeApproved.execute(input.requestId) : view;
  }
}
