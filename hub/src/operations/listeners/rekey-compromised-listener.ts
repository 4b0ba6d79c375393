import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { ListenerEntity } from '../../store/entities';
import { endKeks, insertLifecycleEvent, reopenRegistration, siteKeyHoldings, supersedeOpenDistributions } from '../../store/queries/site-lifecycle';
import { siteKeysSummary, siteKeyView } from './site-keys';

/** States from which a site's root KEK can be declared compromised. */
const COMPROMISABLE: ReadonlySet<string> = new Set(['approved', 'active', 'revoked']);

/**
 * `keyhub listener rekey <id> --compromised`: the site's root KEK is (or may
 * be) known to someone else. A compromised KEK cannot carry its successor,
 * so rotation is no remedy: the site must enroll again. In one transaction:
 * - every root KEK of the site still usable (active, pending, retired: the
 *   site keeps the previous one too) becomes `compromised` and loses its
 *   blob, so the hub never wraps under it again;
 * - every unsettled distribution to the site is superseded and its
 *   unpublished outbox rows deleted; the stream clean-up (SiteStreamJob)
 *   removes its published packages. With no active KEK nothing new is issued;
 * - the site becomes `rekey_required`, the one state from which an existing
 *   id enrolls again (register-enrollment.ts, register-listener.ts): a new
 *   transport key pair, a new fingerprint the operator compares out of band,
 *   the normal approval (with its dual control), a new root KEK version;
 * - its registration re-opens, so the site can send that enrollment with the
 *   NATS identity it holds (a site that lost it gets a new bootstrap through
 *   `keyhub listener register`, allowed in this state);
 * - every key version that travelled to the site (confirmed there, or a
 *   package was issued to it) is recorded (site_key_records) and returned:
 *   each was wrapped under a compromised KEK and must be re-keyed (rotated).
 * The site's NATS identity stays: a compromised KEK is not a compromised
 * host. A host that is not trusted any more is decommissioned instead.
 */
@injectable()
export class RekeyCompromisedListener {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, reason: string | undefined, principal: Principal): Promise<api.CompromiseKekResult> {
    return this.ctx.ds.transaction(async (m) => {
      const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
      if (!COMPROMISABLE.has(listener.state)) throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${listener.state}; its root KEK cannot be declared compromised`);
      const keys = await siteKeyHoldings(m, listenerId);
      const keks = await endKeks(m, listenerId, 'compromised');
      const cancelled = await supersedeOpenDistributions(m, listenerId, 'ROOT_KEK_COMPROMISED', 'the root KEK of the site was declared compromised');
      const eventId = randomUUID();
      await insertLifecycleEvent(
        m,
        { id: eventId, listenerId, kind: 'kek_compromised', reason: reason ?? null, createdBy: principal.name, deadline: null, commandIds: [], finished: true, streamCleanup: 'packages' },
        keys,
      );
      await m.update(ListenerEntity, { id: listenerId }, { state: 'rekey_required' });
      const reopened = await reopenRegistration(m, listenerId, new Date(Date.now() + this.ctx.config.nats.bootstrapTtlSeconds * 1000));
      await appendAudit(m, [
        ...keks.map((k) => ({ actor: principal.name, action: 'kek.compromised', subject: `listener:${listenerId}`, details: { kekId: k.id, version: k.version, reason: reason ?? '' } })),
        {
          actor: principal.name,
          action: 'listener.rekey_required',
          subject: `listener:${listenerId}`,
          details: { eventId, reason: reason ?? '', previousState: listener.state, cancelledDistributions: cancelled, registrationReopened: reopened, ...siteKeysSummary(keys) },
        },
      ]);
      return {
        listenerId,
        state: 'rekey_required' as const,
        compromisedKeks: keks.map((k) => ({ kekId: k.id, version: k.version })),
        cancelledDistributions: cancelled,
        keysToRekey: keys.map(siteKeyView),
      };
    });
  }
}
