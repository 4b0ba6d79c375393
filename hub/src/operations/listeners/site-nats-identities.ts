import { closeRegistration, revokeNatsUser, type RegistrationRow } from '../../store/queries/nats-identities';
import type { Queryable } from '../../store/queries/queryable';

/** A NATS identity of a site, with what it is (for the revocation reason) and how long a revocation must last. */
export interface SiteNatsKey {
  key: string;
  notAfter: Date | null;
  what: string;
}

/** What a site can connect with: its own user once enrolled, and its bootstrap credential while its registration is open. */
export function siteNatsKeys(registration: RegistrationRow | undefined): SiteNatsKey[] {
  const keys: SiteNatsKey[] = [];
  if (registration?.nats_user_key) keys.push({ key: registration.nats_user_key, notAfter: null, what: 'listener user' });
  if (registration && registration.state === 'open') keys.push({ key: registration.bootstrap_key, notAfter: registration.expires_at, what: 'bootstrap' });
  return keys;
}

/**
 * Puts them on the account's revocation list, which cuts the site's live
 * connections and refuses the next, and closes its registration (shared by
 * RevokeListener and FinishDecommission, in their transactions).
 */
export async function revokeSiteNatsKeys(m: Queryable, listenerId: string, registration: RegistrationRow | undefined, keys: SiteNatsKey[], why: string): Promise<void> {
  for (const k of keys) await revokeNatsUser(m, { publicKey: k.key, listenerId, reason: `${k.what}: ${why}`, notAfter: k.notAfter });
  if (registration) await closeRegistration(m, listenerId);
}
