import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { countActiveAdmins, operatorByName, revokeOperator } from '../../store/queries/operators';
import { operatorView } from './operator-view';

/**
 * Revokes an operator and all their tokens, at once and by any admin: never
 * held up by approvals, since stopping someone must not need the consent of
 * the people they might be colluding with. Their pending approvals stop
 * counting (counted at execution). The last active admin cannot be revoked.
 */
@injectable()
export class RevokeOperator {
  constructor(private readonly ctx: HubContext) {}

  async execute(name: string, principal: Principal): Promise<api.OperatorView> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const target = await operatorByName(m, name, true);
      if (!target) throw new KeyhubError('OPERATOR_NOT_FOUND', `no operator ${name}`);
      if (target.state === 'revoked') return operatorView(target);
      if (target.roles.includes('admin') && (await countActiveAdmins(m)) <= 1) throw new KeyhubError('OPERATOR_STATE_INVALID', `${name} is the last active admin`);
      await revokeOperator(m, target.id, principal.name);
      await appendAudit(m, [{ actor: principal.name, action: 'operator.revoked', subject: `operator:${name}`, details: { operatorId: target.id, roles: target.roles.join(',') } }]);
      return operatorView((await operatorByName(m, name))!);
    });
  }
}
