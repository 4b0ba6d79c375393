import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { countActiveAdmins, operatorByName } from '../../store/queries/operators';
import { DualControl } from '../approvals/dual-control';
import { operatorView } from './operator-view';
import { OperatorChanges } from './operator-changes';

/**
 * Grants or removes roles. Taking roles away only reduces power and is
 * immediate, like revocation; granting any role falls under the
 * `operator.manage` policy. The last active admin keeps the role.
 */
@injectable()
export class ChangeOperatorRoles {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly changes: OperatorChanges,
  ) {}

  async execute(name: string, body: api.ChangeRolesBody, principal: Principal): Promise<{ operator: api.OperatorView } | { approval: api.ApprovalRequestView }> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const target = await operatorByName(m, name, true);
      if (!target) throw new KeyhubError('OPERATOR_NOT_FOUND', `no operator ${name}`);
      const add = [...new Set(body.add ?? [])].filter((r) => !target.roles.includes(r));
      const remove = [...new Set(body.remove ?? [])].filter((r) => target.roles.includes(r));
      if (remove.includes('admin')) {
        if ((await countActiveAdmins(m)) <= 1) throw new KeyhubError('OPERATOR_STATE_INVALID', `${name} is the last active admin`);
      }
      const doc: ActionDocument = { action: 'operator.manage', change: 'grant', name, add, remove };
      const required = add.length > 0 ? await this.dualControl.requiredFor(m, 'operator.manage') : 0;
      if (required > 0) return { approval: await this.dualControl.open(m, doc, required, principal) };
      if (add.length + remove.length > 0) await this.changes.apply(m, doc, principal.name, [], true);
      return { operator: operatorView((await operatorByName(m, name))!) };
    });
  }
}
