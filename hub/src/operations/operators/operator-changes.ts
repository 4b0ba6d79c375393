import { createPublicKey, randomUUID } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit } from '../../audit/audit-log';
import { mintApiToken, newTokenId } from '../../crypto/api-tokens';
import type { HubCa } from '../../crypto/ca';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import { insertOperator, operatorByName, setOperatorRoles } from '../../store/queries/operators';
import { insertToken } from '../../store/queries/tokens';
import { TOKENS } from '../../tokens';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';

type OperatorDoc = Extract<ActionDocument, { action: 'operator.manage' }>;

export interface Applied {
  result: ActionResult;
  /** Present when the change ran at once: the new token's secret, for this one response. */
  token?: api.IssuedToken;
  /** Present when a client certificate was issued (public material, so an approved request's result names its serial too). */
  certificate?: api.IssuedCertificate;
}

/**
 * The `operator.manage` changes (create an operator, grant roles, issue a
 * token or a client certificate to someone else), applied in the caller's
 * transaction with their audit events. Run at once when the policy is off,
 * or by ExecuteApproved when it is on; then a new token gets no secret here
 * (see PickupToken).
 */
@injectable()
export class OperatorChanges implements ApprovedActionRunner {
  constructor(@inject(TOKENS.ca) private readonly ca: HubCa) {}

  async apply(m: EntityManager, doc: OperatorDoc, actor: string, approvers: string[], mintNow: boolean): Promise<Applied> {
    const who: Record<string, string> = approvers.length ? { approvers: approvers.join(',') } : {};
    if (doc.change === 'create') {
      if (await operatorByName(m, doc.name)) throw new KeyhubError('OPERATOR_EXISTS', `operator ${doc.name} exists already`);
      const id = randomUUID();
      await insertOperator(m, { id, name: doc.name, roles: doc.roles, createdBy: actor });
      await appendAudit(m, [{ actor, action: 'operator.created', subject: `operator:${doc.name}`, details: { operatorId: id, roles: doc.roles.join(','), ...who } }]);
      const token = await this.issue(m, { operatorId: id, name: doc.name, roles: null, ttlSeconds: doc.tokenTtlSeconds, description: 'first token' }, actor, who, mintNow);
      return { result: { operatorId: id, operator: doc.name, tokenId: token.id }, token: token.issued };
    }
    const target = await operatorByName(m, doc.name, true);
    if (!target) throw new KeyhubError('OPERATOR_NOT_FOUND', `no operator ${doc.name}`);
    if (target.state !== 'active') throw new KeyhubError('OPERATOR_STATE_INVALID', `operator ${doc.name} is revoked`);
    if (doc.change === 'grant') {
      const roles = [...new Set([...target.roles.filter((r) => !doc.remove.includes(r as api.Role)), ...doc.add])];
      await setOperatorRoles(m, target.id, roles);
      await appendAudit(m, [{ actor, action: 'operator.roles_changed', subject: `operator:${doc.name}`, details: { from: target.roles.join(','), to: roles.join(','), ...who } }]);
      return { result: { operator: doc.name, roles: roles.join(',') } };
    }
    if (doc.change === 'certificate') {
      const spki = createPublicKey(doc.publicKeyPem).export({ type: 'spki', format: 'der' });
      const leaf = await this.ca.issueClientCertificate(target.id, target.name, spki, { validityDays: doc.validityDays, actor, tx: m });
      const notAfter = leaf.notAfter.toISOString();
      await appendAudit(m, [
        {
          actor,
          action: 'certificate.issued',
          subject: `certificate:${leaf.serial}`,
          details: { operator: doc.name, profile: 'operator-client', publicKeySha256: doc.publicKeySha256, notAfter, ...who },
        },
      ]);
      return { result: { operator: doc.name, serial: leaf.serial, notAfter }, certificate: { serial: leaf.serial, certificatePem: leaf.pem, chainPem: leaf.chainPem, notAfter } };
    }
    if (doc.roles && doc.roles.some((r) => !target.roles.includes(r))) throw new KeyhubError('ROLE_ESCALATION', `operator ${doc.name} does not hold every role of the scope`);
    const token = await this.issue(m, { operatorId: target.id, name: doc.name, roles: doc.roles, ttlSeconds: doc.ttlSeconds, description: doc.description }, actor, who, mintNow);
    return { result: { operator: doc.name, tokenId: token.id }, token: token.issued };
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'operator.manage') throw new KeyhubError('INTERNAL', 'not an operator change');
    return (await this.apply(m, doc, run.requester.name, run.approvers, false)).result;
  }

  private async issue(
    m: EntityManager,
    t: { operatorId: string; name: string; roles: api.Role[] | null; ttlSeconds: number; description: string },
    actor: string,
    who: Record<string, string>,
    mintNow: boolean,
  ): Promise<{ id: string; issued?: api.IssuedToken }> {
    const expiresAt = new Date(Date.now() + t.ttlSeconds * 1000);
    const minted = mintNow ? mintApiToken() : { id: newTokenId(), token: undefined, secretHash: null };
    await insertToken(m, { id: minted.id, operatorId: t.operatorId, secretHash: minted.secretHash, roles: t.roles, description: t.description, createdBy: actor, expiresAt });
    await appendAudit(m, [
      {
        actor,
        action: 'token.created',
        subject: `token:${minted.id}`,
        details: { operator: t.name, scope: t.roles?.join(',') ?? 'all', expiresAt: expiresAt.toISOString(), pickup: !mintNow, ...who },
      },
    ]);
    const issued = minted.token ? { id: minted.id, token: minted.token, operator: t.name, roles: t.roles, expiresAt: expiresAt.toISOString() } : undefined;
    return { id: minted.id, issued };
  }
}
