import { createHash, randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { canonicalBytes, type api } from '@keyhub/protocol';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { summarize, type ActionDocument, type StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { insertRequest, policyFor, requestById } from '../../store/queries/approvals';
import { approvalView } from './approval-view';

/**
 * The gate in front of every action an approval policy can cover: if the
 * policy is on, the action is not run but stored as a request (its RFC 8785
 * bytes and their SHA-256) for approvers; otherwise the caller runs it.
 */
@injectable()
export class DualControl {
  constructor(private readonly ctx: HubContext) {}

  /** Approvals the action needs now; 0 when its policy is off. */
  async requiredFor(m: EntityManager, action: api.PolicyAction): Promise<number> {
    const policy = await policyFor(m, action);
    return policy?.enabled ? policy.required : 0;
  }

  /**
   * Stores a request that needs `required` approvals, in the caller's
   * transaction, with its audit event. Returns what the requester is shown.
   */
  async open(m: EntityManager, doc: ActionDocument, required: number, principal: Principal): Promise<api.ApprovalRequestView> {
    const id = randomUUID();
    const stored: StoredRequest = { ...doc, requestId: id, requestedBy: principal.name, requestedAt: new Date().toISOString() };
    const canonical = canonicalBytes(stored);
    const hash = createHash('sha256').update(canonical).digest('hex');
    const expiresAt = new Date(Date.now() + this.ctx.config.approvals.requestTtlSeconds * 1000);
    await insertRequest(m, { id, action: doc.action, canonical, hash, required, requestedBy: principal.operatorId, expiresAt });
    await appendAudit(m, [{ actor: principal.name, action: 'approval.requested', subject: `approval:${id}`, details: { action: doc.action, hash, required, summary: summarize(doc) } }]);
    const row = await requestById(m, id);
    return approvalView(row!, []);
  }
}
