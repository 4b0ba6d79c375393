import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { fingerprintsEqual, type api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { ApproveTargetKek } from './approve-target-kek';

/**
 * A key officer approves a target's own KEK, naming the transport key
 * fingerprint read at the site. Under the `listener.target_approve` policy
 * this becomes a dual-control request carrying that fingerprint (a wrong one
 * is refused and audited before anyone is asked); once approved it runs with
 * the fingerprint checked again against the request as stored then. Without
 * the policy the officer's approval runs at once.
 */
@injectable()
export class RequestTargetKekApproval implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly approve: ApproveTargetKek,
  ) {}

  async execute(listenerId: string, target: string, fingerprint: string, principal: Principal): Promise<api.ApproveTargetKekResult | { approval: api.ApprovalRequestView }> {
    const pending = await this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const required = await this.dualControl.requiredFor(m, 'listener.target_approve');
      if (required === 0) return undefined;
      const stored = await this.approve.pendingFingerprint(m, listenerId, target);
      if (!fingerprintsEqual(fingerprint, stored)) return 'mismatch' as const;
      const doc: ActionDocument = { action: 'listener.target_approve', listenerId, target, fingerprint: stored };
      return { approval: await this.dualControl.open(m, doc, required, principal) };
    });
    if (pending && pending !== 'mismatch') return pending;
    return this.approve.execute(listenerId, target, fingerprint, principal.name);
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'listener.target_approve') throw new KeyhubError('INTERNAL', 'not a target KEK approval');
    const r = await this.approve.executeIn(m, doc.listenerId, doc.target, doc.fingerprint, run.requester.name, run.approvers);
    if ('refused' in r) throw new KeyhubError('FINGERPRINT_MISMATCH', `the KEK request of target ${doc.target} of ${doc.listenerId} changed since the approval request was made`);
    return { listenerId: r.listenerId, target: r.target, kekId: r.kekId, version: r.version, kcv: r.kcv };
  }
}
