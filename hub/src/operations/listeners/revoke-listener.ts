import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { ListenerEntity } from '../../store/entities';
import { findRegistration } from '../../store/queries/nats-identities';
import { revokeSiteNatsKeys, siteNatsKeys } from './site-nats-identities';

/**
 * Decommissions a site on NATS: the listener is revoked, and its own NATS
 * user and any open bootstrap credential are put on the account's
 * revocation list in the same transaction as the state change and its
 * audit event. The account publisher pushes the new account JWT within a
 * second; every server then drops the site's live connections and refuses
 * new ones. Immediate, never waiting for approvals (cutting access is never
 * the dangerous direction). Rule: revoking a revoked listener changes nothing.
 */
@injectable()
export class RevokeListener {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, reason: string | undefined, principal: Principal): Promise<{ listenerId: string; state: 'revoked'; revokedNatsKeys: number }> {
    return this.ctx.ds.transaction(async (m) => {
      const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
      const registration = await findRegistration(m, listenerId, true);
      if (!listener && !registration) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
      const keys = siteNatsKeys(registration);
      if (listener?.state === 'revoked' && keys.length === 0) return { listenerId, state: 'revoked' as const, revokedNatsKeys: 0 };
      await revokeSiteNatsKeys(m, listenerId, registration, keys, reason ?? 'listener revoked');
      if (listener) await m.update(ListenerEntity, { id: listenerId }, { state: 'revoked' });
      await appendAudit(m, [{ actor: principal.name, action: 'listener.revoked', subject: `listener:${listenerId}`, details: { reason: reason ?? '', natsKeys: keys.map((k) => k.key).join(',') } }]);
      return { listenerId, state: 'revoked' as const, revokedNatsKeys: keys.length };
    });
  }
}
