import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { fingerprintsEqual, type api } from '@keyhub/protocol';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { ApproveListener } from './approve-listener';

/**
 * A key officer approves an enrollment, naming the fingerprint read at the
 * site. Under the `listener.approve` policy this becomes a request that
 * carries that fingerprint; the approval runs, once approved, with the
 * fingerprint checked again against the enrollment as stored then.
 */
@injectable()
export class RequestListenerApproval implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly approveListener: ApproveListener,
  ) {}

  async execute(listenerId: string, fingerprint: string, principal: Principal): Promise<{ listenerId: string; kekId: string; kcv: string } | { approval: api.ApprovalRequestView }> {
    const pending = await this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const required = await this.dualControl.requiredFor(m, 'listener.approve');
      if (required === 0) return undefined;
      const stored = await this.approveListener.pendingFingerprint(m, listenerId);
      // A wrong fingerprint is refused before anyone is asked to approve it (and audited, as without a policy).
      if (!fingerprintsEqual(fingerprint, stored)) return 'mismatch' as const;
      const doc: ActionDocument = { action: 'listener.approve', listenerId, fingerprint: stored };
      return { approval: await this.dualControl.open(m, doc, required, principal) };
    });
    if (pending && pending !== 'mismatch') return pending;
    const result = await this.approveListener.execute(listenerId, fingerprint, principal.name);
    return { listenerId, ...result };
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'listener.approve') throw new KeyhubError('INTERNAL', 'not a listener approval');
    const r = await this.approveListener.executeIn(m, doc.listenerId, doc.fingerprint, run.requester.name, run.approvers);
    if ('refused' in r) throw new KeyhubError('FINGERPRINT_MISMATCH', `the enrollment of ${doc.listenerId} changed since the request was made`);
    return { listenerId: doc.listenerId, kekId: r.kekId, kcv: r.kcv };
  }
}
