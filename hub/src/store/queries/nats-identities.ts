import type { Queryable } from './queryable';

/** A registration as stored; the bootstrap seed is never stored, only its public NKEY. */
export interface RegistrationRow {
  listener_id: string;
  bootstrap_key: string;
  nats_user_key: string | null;
  state: 'open' | 'closed';
  expires_at: Date;
}

export async function findRegistration(m: Queryable, listenerId: string, forUpdate = false): Promise<RegistrationRow | undefined> {
  const rows = (await m.query(`SELECT listener_id, bootstrap_key, nats_user_key, state, expires_at FROM listener_registrations WHERE listener_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [
    listenerId,
  ])) as RegistrationRow[];
  return rows[0];
}

/** A new registration replaces an earlier one for the same id (whose bootstrap the caller revokes). */
export async function upsertRegistration(m: Queryable, r: { listenerId: string; bootstrapKey: string; registeredBy: string; expiresAt: Date }): Promise<void> {
  await m.query(
    `INSERT INTO listener_registrations (listener_id, bootstrap_key, nats_user_key, state, registered_by, registered_at, expires_at)
          VALUES ($1, $2, NULL, 'open', $3, now(), $4)
     ON CONFLICT (listener_id) DO UPDATE SET bootstrap_key = $2, nats_user_key = NULL, state = 'open', registered_by = $3, registered_at = now(), expires_at = $4`,
    [r.listenerId, r.bootstrapKey, r.registeredBy, r.expiresAt],
  );
}

/** The NATS user key a verified enrollment named; approval issues its JWT. */
export async function setEnrolledUserKey(m: Queryable, listenerId: string, userKey: string): Promise<void> {
  await m.query(`UPDATE listener_registrations SET nats_user_key = $2 WHERE listener_id = $1`, [listenerId, userKey]);
}

export async function closeRegistration(m: Queryable, listenerId: string): Promise<void> {
  await m.query(`UPDATE listener_registrations SET state = 'closed' WHERE listener_id = $1`, [listenerId]);
}

/** Every JWT of `publicKey` issued up to now is refused from the next account update on. */
export async function revokeNatsUser(m: Queryable, r: { publicKey: string; listenerId: string | null; reason: string; notAfter: Date | null }): Promise<void> {
  await m.query(
    `INSERT INTO nats_revocations (public_key, listener_id, reason, revoked_at, not_after) VALUES ($1, $2, $3, now(), $4)
     ON CONFLICT (public_key) DO UPDATE SET reason = $3, revoked_at = now(), not_after = $4`,
    [r.publicKey, r.listenerId, r.reason, r.notAfter],
  );
}

/**
 * The account's revocation list: public key → unix seconds. A revoked JWT
 * that has expired anyway is left out, so the list (and the account JWT that
 * carries it) does not grow without end.
 */
export async function currentRevocations(m: Queryable): Promise<Record<string, number>> {
  const rows = (await m.query(
    `SELECT public_key, floor(extract(epoch FROM revoked_at))::bigint AS at FROM nats_revocations WHERE not_after IS NULL OR not_after > now() ORDER BY public_key`,
  )) as Array<{ public_key: string; at: string }>;
  return Object.fromEntries(rows.map((r) => [r.public_key, Number(r.at)]));
}

/** Cheap change detector for the account publisher: count and newest revocation. */
export async function revocationsVersion(m: Queryable): Promise<string> {
  const rows = (await m.query(`SELECT count(*)::text AS n, coalesce(max(revoked_at)::text, '') AS at FROM nats_revocations`)) as Array<{ n: string; at: string }>;
  return `${rows[0].n}/${rows[0].at}`;
}
