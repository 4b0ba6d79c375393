import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { encodeEnvelope, NATS_CREDENTIALS_TYPE, subjects, type NatsCredentialsMessage } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../audit/audit-log';
import type { HubKeyring } from '../crypto/hub-keyring';
import { closeRegistration, findRegistration, revokeNatsUser } from '../store/queries/nats-identities';
import { NatsAuthority } from './nats-authority';
import { listenerPermissions } from './permissions';

/**
 * At approval, inside its transaction: the site's own user JWT (for the
 * NATS key its verified enrollment named), as a signed message for the
 * outbox. It is the answer to the enrollment, which the site's bootstrap
 * credential may read (from its enrollment consumer); from then on the site
 * connects as itself. A new site needs no server change: the servers trust
 * every user the account key signs.
 */
export async function listenerCredentialsOutboxRow(m: EntityManager, keyring: HubKeyring, listenerId: string): Promise<unknown[]> {
  const registration = await findRegistration(m, listenerId, true);
  if (!registration?.nats_user_key) throw new KeyhubError('LISTENER_NOT_REGISTERED', `listener ${listenerId} enrolled without a registered NATS key`);
  const authority = await NatsAuthority.for(keyring.hsm);
  const userJwt = await authority.issueUser({ userKey: registration.nats_user_key, name: `listener-${listenerId}`, permissions: listenerPermissions(listenerId) });
  const message: NatsCredentialsMessage = {
    type: NATS_CREDENTIALS_TYPE,
    id: randomUUID(),
    listenerId,
    issuedAt: new Date().toISOString(),
    hubKey: keyring.signingSpki.toString('base64'),
    userKey: registration.nats_user_key,
    userJwt,
  };
  const envelope = await keyring.sign(message);
  return [subjects.toListener(listenerId, 'nats_credentials'), message.id, Buffer.from(encodeEnvelope(envelope)), null];
}

/**
 * Once the site has confirmed its root KEK (a message it can only send as
 * itself, with its own NATS user), its bootstrap credential has done its
 * job and is revoked, in the confirming transaction. It also expires on its
 * own; a bootstrap never outlives the enrollment it was made for.
 */
export async function revokeBootstrap(m: EntityManager, listenerId: string, actor: string): Promise<void> {
  const registration = await findRegistration(m, listenerId, true);
  if (!registration || registration.state !== 'open') return;
  await revokeNatsUser(m, { publicKey: registration.bootstrap_key, listenerId, reason: 'bootstrap used: listener active', notAfter: registration.expires_at });
  await closeRegistration(m, listenerId);
  await appendAudit(m, [{ actor, action: 'listener.bootstrap_revoked', subject: `listener:${listenerId}`, details: { bootstrapKey: registration.bootstrap_key } }]);
}
