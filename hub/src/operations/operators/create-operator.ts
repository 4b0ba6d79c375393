import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { operatorByName } from '../../store/queries/operators';
import { DualControl } from '../approvals/dual-control';
import { operatorView } from './operator-view';
import { OperatorChanges } from './operator-changes';

/**
 * Creates an operator with roles and their first token (admins only). Under
 * the `operator.manage` policy it becomes a request; once approved, the
 * requesting admin picks the token up once and hands it over.
 */
@injectable()
export class CreateOperator {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly changes: OperatorChanges,
  ) {}

  async execute(body: api.CreateOperatorBody, principal: Principal): Promise<{ operator: api.OperatorView; token: api.IssuedToken } | { approval: api.ApprovalRequestView }> {
    const doc: ActionDocument = {
      action: 'operator.manage',
      change: 'create',
      name: body.name,
      roles: [...new Set(body.roles)],
      tokenTtlSeconds: body.tokenTtlSeconds ?? this.ctx.config.api.tokenTtlSeconds,
    };
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      if (await operatorByName(m, body.name)) throw new KeyhubError('OPERATOR_EXISTS', `operator ${body.name} exists already`);
      const required = await this.dualControl.requiredFor(m, 'operator.manage');
      if (required > 0) return { approval: await this.dualControl.open(m, doc, required, principal) };
      const applied = await this.changes.apply(m, doc, principal.name, [], true);
      const created = await operatorByName(m, body.name);
      return { operator: operatorView(created!), token: applied.token! };
    });
  }
}
