import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { ApproveTargetUpdate } from './approve-target-update';

/**
 * A key officer approves a site's signed target update. Under the
 * `listener.target_update` policy this becomes a dual-control request
 * naming the update (id, operation, target, kind, settings), resolved when
 * asked; once approved it runs only if that same update still awaits
 * approval. Without the policy the officer's approval runs at once.
 */
@injectable()
export class RequestTargetUpdateApproval implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly approve: ApproveTargetUpdate,
  ) {}

  async execute(listenerId: string, target: string, updateId: string, principal: Principal): Promise<api.ApproveTargetUpdateResult | { approval: api.ApprovalRequestView }> {
    const pending = await this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const required = await this.dualControl.requiredFor(m, 'listener.target_update');
      if (required === 0) return undefined;
      const row = await this.approve.pending(m, listenerId, target, updateId);
      const doc: ActionDocument = { action: 'listener.target_update', listenerId, target, updateId: row.id, op: row.op, kind: row.kind, settings: row.settings };
      return { approval: await this.dualControl.open(m, doc, required, principal) };
    });
    if (pending) return pending;
    return this.approve.execute(listenerId, target, updateId, principal.name);
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'listener.target_update') throw new KeyhubError('INTERNAL', 'not a target update approval');
    const r = await this.approve.executeIn(m, doc.listenerId, doc.target, doc.updateId, run.requester.name, run.approvers);
    return { listenerId: r.listenerId, target: r.target, op: r.op, kind: r.kind, distributionsRetired: r.retired.distributions, keksRevoked: r.retired.keks };
  }
}
