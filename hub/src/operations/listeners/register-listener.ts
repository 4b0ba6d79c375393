import { injectable } from 'tsyringe';
import { nkeys } from 'nats';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { Principal } from '../../domain/principal';
import { ListenerEntity } from '../../store/entities';
import { findRegistration, revokeNatsUser, upsertRegistration } from '../../store/queries/nats-identities';
import { formatCreds } from '../../nats/nats-jwt';
import { NatsAuthority } from '../../nats/nats-authority';
import { bootstrapPermissions } from '../../nats/permissions';

/**
 * `keyhub listener register <id>`: an operator vouches for a site id before
 * it exists on NATS, and receives the site's bootstrap credential: a user
 * JWT (signed by the account key in the HSM, expiring) and its seed, made
 * here and returned once, never stored. It allows nothing but publishing
 * that id's enrollment and reading the answer (permissions.ts). Rules: an
 * id registers again only while it waits for approval or after its root KEK
 * was declared compromised (`rekey_required`: the one way an existing site
 * enrolls again, e.g. when it lost its NATS identity too); an approved,
 * active, revoked or decommissioned one is refused. Registering again
 * replaces the registration and revokes the earlier bootstrap credential.
 */
/** The states in which an existing id may be registered (again). */
const REGISTRABLE: ReadonlySet<string> = new Set(['pending_approval', 'rekey_required']);

function notRegistrable(listenerId: string, state: string): KeyhubError {
  return new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${state}; an existing site enrolls again only after \`keyhub listener rekey --compromised\``);
}

@injectable()
export class RegisterListener {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, ttlSeconds: number | undefined, principal: Principal): Promise<api.RegisterListenerResult> {
    // Refused early, before anything is signed (and again under the lock below).
    const current = await this.ctx.ds.getRepository(ListenerEntity).findOne({ where: { id: listenerId } });
    if (current && !REGISTRABLE.has(current.state)) throw notRegistrable(listenerId, current.state);
    const authority = await NatsAuthority.for(this.ctx.keyring.hsm);
    const ttl = ttlSeconds ?? this.ctx.config.nats.bootstrapTtlSeconds;
    const expiresAt = new Date(Math.floor(Date.now() / 1000) * 1000 + ttl * 1000);
    const user = nkeys.createUser();
    const bootstrapKey = user.getPublicKey();
    const jwt = await authority.issueUser({ userKey: bootstrapKey, name: `bootstrap-${listenerId}`, permissions: bootstrapPermissions(listenerId), expiresAt });
    await this.ctx.ds.transaction(async (m) => {
      const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
      if (listener && !REGISTRABLE.has(listener.state)) throw notRegistrable(listenerId, listener.state);
      const previous = await findRegistration(m, listenerId, true);
      if (previous && previous.state === 'open') {
        await revokeNatsUser(m, { publicKey: previous.bootstrap_key, listenerId, reason: 'bootstrap replaced', notAfter: previous.expires_at });
      }
      await upsertRegistration(m, { listenerId, bootstrapKey, registeredBy: principal.name, expiresAt });
      await appendAudit(m, [
        {
          actor: principal.name,
          action: 'listener.registered',
          subject: `listener:${listenerId}`,
          details: { bootstrapKey, expiresAt: expiresAt.toISOString(), ...(previous ? { replaced: previous.bootstrap_key } : {}) },
        },
      ]);
    });
    return { listenerId, bootstrapKey, expiresAt: expiresAt.toISOString(), creds: formatCreds(jwt, new TextDecoder().decode(user.getSeed())) };
  }
}
