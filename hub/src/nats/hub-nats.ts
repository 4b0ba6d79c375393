import { jwtAuthenticator, nkeys, type Authenticator } from 'nats';
import type { DataSource } from 'typeorm';
import type { Hsm, Logger } from '@keyhub/shared';
import type { HubConfig } from '../config';
import type { HubCa } from '../crypto/ca';
import { readFile } from 'node:fs/promises';
import { NatsAccountPublisher } from './account-publisher';
import { NatsAuthority } from './nats-authority';
import { hubPermissions, hubSystemPermissions } from './permissions';

export interface HubNatsAccess {
  /** For HubBus.connect. */
  authenticator?: Authenticator;
  tlsCa?: string;
  /** Started by `serve` after the bus: keeps the servers' account (revocations) current. */
  publisher?: NatsAccountPublisher;
}

/**
 * The hub's own NATS identities, made fresh at every start: a new user NKEY
 * in memory, its JWT signed by the account key in the HSM. Nothing of it is
 * written anywhere, so there is no hub credential file to steal; a stolen
 * process image gives at most this run's key, which the next start
 * replaces. The servers' certificates come from the hub CA, whose root the
 * hub trusts for NATS unless `nats.caFile` names another.
 */
export async function hubNatsAccess(hsm: Hsm, ds: DataSource, config: HubConfig, ca: HubCa, logger: Logger): Promise<HubNatsAccess> {
  const n = config.nats;
  const tlsCa = n.tls ? (n.caFile ? await readFile(n.caFile, 'utf8') : ca.certificatePem('root')) : undefined;
  if (n.auth === 'none') return { tlsCa };
  const authority = await NatsAuthority.for(hsm);
  const user = nkeys.createUser();
  const jwt = await authority.issueUser({ userKey: user.getPublicKey(), name: n.name, permissions: hubPermissions() });
  const sysUser = nkeys.createUser();
  const sysJwt = await authority.issueUser({ userKey: sysUser.getPublicKey(), name: `${n.name}-system`, permissions: hubSystemPermissions(), system: true });
  const publisher = new NatsAccountPublisher(authority, ds, { servers: n.servers, authenticator: jwtAuthenticator(sysJwt, sysUser.getSeed()), tlsCa }, logger);
  return { authenticator: jwtAuthenticator(jwt, user.getSeed()), tlsCa, publisher };
}
