import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { finishRequest, requestById } from '../../store/queries/approvals';
import { ListApprovals } from './list-approvals';

/** The requester withdraws a pending request; nobody else can. */
@injectable()
export class CancelApproval {
  constructor(
    private readonly ctx: HubContext,
    private readonly list: ListApprovals,
  ) {}

  async execute(requestId: string, principal: Principal): Promise<api.ApprovalRequestView> {
    await this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const r = await requestById(m, requestId, true);
      if (!r) throw new KeyhubError('APPROVAL_NOT_FOUND', `no approval request ${requestId}`);
      if (r.requested_by !== principal.operatorId) throw new KeyhubError('PERMISSION_DENIED', 'only the requester can cancel a request');
      if (r.state !== 'pending') throw new KeyhubError('APPROVAL_STATE_INVALID', `request ${r.id} is ${r.state}`);
      await finishRequest(m, r.id, 'cancelled', null, null);
      await appendAudit(m, [{ actor: principal.name, action: 'approval.cancelled', subject: `approval:${r.id}`, details: { hash: r.hash } }]);
    });
    return this.list.show(requestId);
  }
}
