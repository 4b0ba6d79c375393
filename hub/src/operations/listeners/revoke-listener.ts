import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { ListenerEntity } from '../../store/entities';
import { closeRegistration, findRegistration, revokeNatsUser } from '../../store/queries/nats-identities';

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
      const keys: Array<{ key: string; notAfter: Date | null; what: string }> = [];
      if (registration?.nats_user_key) keys.push({ key: registration.nats_user_key, notAfter: null, what: 'listener user' });
      if (registration && registration.state === 'open') keys.push({ key: registration.bootstrap_key, notAfter: registration.expires_at, what: 'bootstrap' });
      if (listener?.state === 'revoked' && keys.length === 0) return { listenerId, state: 'revoked' as const, revokedNatsKeys: 0 };
      for (const k of keys) await revokeNatsUser(m, { publicKey: k.key, listenerId, reason: `${k.what}: ${reason ?? 'listener revoked'}`, notAfter: k.notAfter });
      if (registration) await closeRegistration(m, listenerId);
      if (listener) await m.update(ListenerEntity, { id: listenerId }, { state: 'revoked' });
      await appendAudit(m, [{ actor: principal.name, action: 'listener.revoked', subject: `listener:${listenerId}`, details: { reason: reason ?? '', natsKeys: keys.map((k) => k.key).join(',') } }]);
      return { listenerId, state: 'revoked' as const, revokedNatsKeys: keys.length };
    });
  }
}
