import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { allows } from '../../domain/roles';
import { operatorByName } from '../../store/queries/operators';
import { DualControl } from '../approvals/dual-control';
import { OperatorChanges } from './operator-changes';

/**
 * Creates a token. For oneself: scoped to at most the roles of the calling
 * credential and expiring no later than it, so a token can only ever narrow
 * what its holder has. For another operator (admins only): a credential is
 * as good as their roles, so it falls under `operator.manage`.
 */
@injectable()
export class CreateToken {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly changes: OperatorChanges,
  ) {}

  async execute(body: api.CreateTokenBody, principal: Principal): Promise<{ token: api.IssuedToken } | { approval: api.ApprovalRequestView }> {
    const forSelf = body.operator === undefined || body.operator === principal.name;
    const roles = body.roles ? [...new Set(body.roles)] : null;
    let ttlSeconds = body.ttlSeconds ?? this.ctx.config.api.tokenTtlSeconds;
    if (forSelf) {
      if (roles && roles.some((r) => !principal.roles.includes(r))) throw new KeyhubError('ROLE_ESCALATION', 'a token can only carry roles the calling credential has');
      if (principal.expiresAt) ttlSeconds = Math.min(ttlSeconds, Math.floor((principal.expiresAt.getTime() - Date.now()) / 1000));
    } else if (!allows(principal.roles, 'operators:write')) {
      throw new KeyhubError('PERMISSION_DENIED', 'only admins create tokens for other operators');
    }
    const name = body.operator ?? principal.name;
    const scope = forSelf && roles === null && principal.tokenScope ? [...principal.tokenScope] : roles;
    const doc: ActionDocument = { action: 'operator.manage', change: 'token', name, roles: scope, ttlSeconds: Math.max(60, ttlSeconds), description: body.description ?? '' };
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const target = await operatorByName(m, name);
      if (!target) throw new KeyhubError('OPERATOR_NOT_FOUND', `no operator ${name}`);
      const required = forSelf ? 0 : await this.dualControl.requiredFor(m, 'operator.manage');
      if (required > 0) return { approval: await this.dualControl.open(m, doc, required, principal) };
      const applied = await this.changes.apply(m, doc, principal.name, [], true);
      return { token: applied.token! };
    });
  }
}
