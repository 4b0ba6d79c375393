import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument } from '../../domain/approval-actions';
import { policySatisfiable } from '../../domain/approval-rule';
import type { Principal } from '../../domain/principal';
import { listPolicies, lockPolicy, policyFor, upsertPolicy } from '../../store/queries/approvals';
import { countActiveApprovers } from '../../store/queries/operators';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from './approved-action';
import { DualControl } from './dual-control';

/** A policy nobody has set yet: off, two approvals when switched on. */
const DEFAULT_POLICY = { required: 2, enabled: false };

@injectable()
export class ListPolicies {
  constructor(private readonly ctx: HubContext) {}

  async execute(): Promise<api.PolicyView[]> {
    const m = this.ctx.ds.manager;
    const stored = new Map((await listPolicies(m)).map((p) => [p.action, p]));
    const approvers = await countActiveApprovers(m);
    return api.POLICY_ACTIONS.map((action) => {
      const p = stored.get(action);
      return { action, required: p?.required ?? DEFAULT_POLICY.required, enabled: p?.enabled ?? false, approvers, updatedAt: p?.updated_at?.toISOString() ?? null, updatedBy: p?.updated_by ?? null };
    });
  }
}

/**
 * Changes an approval policy. Bootstrap rule: a policy can be switched on
 * only when enough active approvers exist to satisfy it. Once on, changing
 * or switching it off needs its own quorum (and the `approval_policy.update`
 * policy's, if that is on and asks for more): whoever could lift a policy
 * alone could skip it.
 */
@injectable()
export class UpdatePolicy implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
  ) {}

  async execute(action: api.PolicyAction, body: api.PolicyUpdateBody, principal: Principal): Promise<{ policy: api.PolicyView } | { approval: api.ApprovalRequestView }> {
    const outcome = await this.ctx.ds.transaction(async (m): Promise<{ approval: api.ApprovalRequestView } | { applied: true }> => {
      await lockAuditChain(m);
      await lockPolicy(m, action);
      const current = (await policyFor(m, action)) ?? { ...DEFAULT_POLICY, action };
      const from = { required: current.required, enabled: current.enabled };
      const to = { required: body.required ?? from.required, enabled: body.enabled ?? from.enabled };
      await this.checkSatisfiable(m, to);
      const own = from.enabled ? from.required : 0;
      const meta = action === 'approval_policy.update' ? 0 : await this.dualControl.requiredFor(m, 'approval_policy.update');
      const required = Math.max(own, meta);
      const doc: ActionDocument = { action: 'approval_policy.update', policy: action, from, to };
      if (required > 0) return { approval: await this.dualControl.open(m, doc, required, principal) };
      await this.apply(m, doc, principal.name, []);
      return { applied: true };
    });
    if ('approval' in outcome) return outcome;
    const views = await new ListPolicies(this.ctx).execute();
    return { policy: views.find((v) => v.action === action)! };
  }

  async runInTransaction(m: EntityManager, doc: ActionDocument, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'approval_policy.update') throw new KeyhubError('INTERNAL', 'not a policy change');
    await lockPolicy(m, doc.policy);
    const current = await policyFor(m, doc.policy);
    const now = { required: current?.required ?? DEFAULT_POLICY.required, enabled: current?.enabled ?? false };
    // Approved against a starting point that has since moved: the approvers did not see this change.
    if (now.required !== doc.from.required || now.enabled !== doc.from.enabled) throw new KeyhubError('APPROVAL_STATE_INVALID', `policy ${doc.policy} changed since the request was made`);
    await this.checkSatisfiable(m, doc.to);
    await this.apply(m, doc, run.requester.name, run.approvers);
    return { policy: doc.policy, enabled: doc.to.enabled, required: doc.to.required };
  }

  private async checkSatisfiable(m: EntityManager, to: { required: number; enabled: boolean }): Promise<void> {
    if (!to.enabled) return;
    const approvers = await countActiveApprovers(m);
    if (!policySatisfiable(to.required, approvers)) {
      throw new KeyhubError('POLICY_QUORUM_UNAVAILABLE', `${to.required} approvals needed but only ${approvers} active approver(s) exist`, { details: { required: to.required, approvers } });
    }
  }

  private async apply(m: EntityManager, doc: Extract<ActionDocument, { action: 'approval_policy.update' }>, actor: string, approvers: string[]): Promise<void> {
    await upsertPolicy(m, { action: doc.policy, required: doc.to.required, enabled: doc.to.enabled, by: actor });
    await appendAudit(m, [
      {
        actor,
        action: 'policy.updated',
        subject: `policy:${doc.policy}`,
        details: { fromEnabled: doc.from.enabled, fromRequired: doc.from.required, enabled: doc.to.enabled, required: doc.to.required, approvers: approvers.join(',') },
      },
    ]);
  }
}
