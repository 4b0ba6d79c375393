import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { decisionsFor, listRequests, requestById } from '../../store/queries/approvals';
import { approvalView } from './approval-view';

/** Requests with their canonical bytes and the decisions that would count now. */
@injectable()
export class ListApprovals {
  constructor(private readonly ctx: HubContext) {}

  async execute(query: { state?: api.ApprovalState; limit: number }): Promise<api.ApprovalRequestView[]> {
    const m = this.ctx.ds.manager;
    // Expired requests are still stored as pending until someone touches them; select them as what they are.
    const rows = await listRequests(m, query.state === 'expired' ? 'pending' : (query.state ?? null), query.limit);
    const decisions = await decisionsFor(
      m,
      rows.map((r) => r.id),
    );
    const views = rows.map((r) =>
      approvalView(
        r,
        decisions.filter((d) => d.request_id === r.id),
      ),
    );
    return query.state ? views.filter((v) => v.state === query.state) : views;
  }

  async show(id: string): Promise<api.ApprovalRequestView> {
    const m = this.ctx.ds.manager;
    const r = await requestById(m, id);
    if (!r) throw new KeyhubError('APPROVAL_NOT_FOUND', `no approval request ${id}`);
    return approvalView(r, await decisionsFor(m, [id]));
  }
}
