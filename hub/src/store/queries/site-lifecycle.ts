import type { Queryable } from './queryable';

/*
 * Site lifecycle statements: root KEK rotation, a compromised root KEK,
 * decommissioning (operations/listeners/). Every statement here is named by
 * its function; the operations call them inside their own transaction.
 */

/** A root KEK row as the rotation needs it. */
export interface RootKekRow {
  id: string;
  version: number;
  wrapped: Buffer;
  kcv: string;
  mac: Buffer | null;
  state: string;
  activated_at: Date | null;
}

/** `current-root-kek`: the KEK packages are wrapped under now (the highest active version, as loadKeks picks it). */
export async function currentRootKek(m: Queryable, listenerId: string): Promise<RootKekRow | undefined> {
  const [row] = await m.query(`SELECT id, version, wrapped, kcv, mac, state, activated_at FROM keks WHERE listener_id = $1 AND state = 'active' ORDER BY version DESC LIMIT 1`, [listenerId]);
  return row as RootKekRow | undefined;
}

/** `pending-root-kek`: a root KEK sent but not yet confirmed (enrollment or rotation). */
export async function pendingRootKek(m: Queryable, listenerId: string): Promise<{ id: string; version: number } | undefined> {
  const [row] = await m.query(`SELECT id, version FROM keks WHERE listener_id = $1 AND state = 'pending_confirmation' ORDER BY version DESC LIMIT 1`, [listenerId]);
  return row as { id: string; version: number } | undefined;
}

/** `next-kek-version`: versions only grow per listener, across rotations and re-enrollments. */
export async function nextKekVersion(m: Queryable, listenerId: string): Promise<number> {
  const [row] = await m.query(`SELECT coalesce(max(version), 0) + 1 AS v FROM keks WHERE listener_id = $1`, [listenerId]);
  return Number(row.v);
}

/**
 * `packages-in-flight-before`: unconfirmed distributions whose last package
 * was issued before `since` (with a minute's margin for a batch that read
 * the older KEK just before the newer one was activated).
 */
export async function packagesInFlightBefore(m: Queryable, listenerId: string, since: Date): Promise<number> {
  const [row] = await m.query(
    `SELECT count(*)::int AS n FROM distributions d JOIN packages p ON p.id = d.last_package_id
      WHERE d.listener_id = $1 AND d.state IN ('queued', 'sent') AND p.issued_at < $2::timestamptz + interval '1 minute'`,
    [listenerId, since],
  );
  return Number(row.n);
}

/** `has-retired-kek`: whether the site still keeps a previous root KEK (one a rotation retired). */
export async function hasRetiredKek(m: Queryable, listenerId: string): Promise<boolean> {
  const rows: unknown[] = await m.query(`SELECT 1 FROM keks WHERE listener_id = $1 AND state = 'retired' LIMIT 1`, [listenerId]);
  return rows.length > 0;
}

/** `retire-older-keks`: once a rotation is confirmed the hub never wraps under the older versions again. */
export async function retireOlderKeks(m: Queryable, listenerId: string, version: number): Promise<Array<{ id: string; version: number }>> {
  return m.query(`WITH u AS (UPDATE keks SET state = 'retired' WHERE listener_id = $1 AND state = 'active' AND version < $2 RETURNING id, version) SELECT id, version FROM u`, [listenerId, version]);
}

/** `refuse-kek`: a rotation whose KCV did not match is never used (the operator may rotate again). */
export async function refusePendingKek(m: Queryable, kekId: string): Promise<void> {
  await m.query(`UPDATE keks SET state = 'revoked', wrapped = '\\x'::bytea WHERE id = $1 AND state = 'pending_confirmation'`, [kekId]);
}

/**
 * `end-keks`: every root KEK of the site still usable becomes `state`
 * (compromised or revoked) and loses its blob: nothing can unwrap it again,
 * whatever the database says later (its row MAC no longer matches either).
 */
export async function endKeks(m: Queryable, listenerId: string, state: 'compromised' | 'revoked'): Promise<Array<{ id: string; version: number }>> {
  const rows: Array<{ id: string; version: number }> = await m.query(
    `WITH u AS (UPDATE keks SET state = $2, wrapped = '\\x'::bytea WHERE listener_id = $1 AND state IN ('active', 'pending_confirmation', 'retired') RETURNING id, version)
     SELECT id, version FROM u`,
    [listenerId, state],
  );
  // Blobs of KEKs ended earlier (compromised before a decommission) go too.
  await m.query(`UPDATE keks SET wrapped = '\\x'::bytea WHERE listener_id = $1 AND length(wrapped) > 0 AND state IN ('compromised', 'revoked')`, [listenerId]);
  return rows.sort((a, b) => a.version - b.version);
}

/**
 * The KEKs of a site's other targets (target_keks) end with it: revoked, their
 * blobs gone, so nothing can wrap a key to them again whatever the database
 * says later. Returns what was ended.
 */
export async function revokeTargetKeks(m: Queryable, listenerId: string): Promise<Array<{ id: string; target: string; version: number; state: string }>> {
  const rows: Array<{ id: string; target: string; version: number; state: string }> = await m.query(
    `WITH old AS (SELECT id, state FROM target_keks WHERE listener_id = $1 AND state IN ('requested', 'pending_confirmation', 'active', 'retired') FOR UPDATE),
          u AS (UPDATE target_keks t SET state = 'revoked', wrapped = NULL FROM old WHERE t.id = old.id RETURNING t.id, t.target, t.version, old.state)
     SELECT id, target, version, state FROM u`,
    [listenerId],
  );
  return rows.sort((a, b) => a.target.localeCompare(b.target) || a.version - b.version);
}

/**
 * `supersede-open-distributions`: every distribution to the site not yet
 * settled is superseded (settled: no receipt moves it again) with the reason,
 * and its unpublished outbox rows are deleted. Returns how many.
 */
export async function supersedeOpenDistributions(m: Queryable, listenerId: string, code: string, detail: string): Promise<number> {
  const rows: Array<{ id: string }> = await m.query(
    `WITH u AS (UPDATE distributions SET state = 'superseded', error_code = $2, error_detail = $3, updated_at = now()
                 WHERE listener_id = $1 AND state NOT IN ('confirmed', 'superseded') RETURNING id) SELECT id FROM u`,
    [listenerId, code, detail],
  );
  if (rows.length) await m.query(`DELETE FROM outbox WHERE distribution_id = ANY($1::uuid[])`, [rows.map((r) => r.id)]);
  return rows.length;
}

/**
 * `release-site-distributions`: at the end of a decommission nothing is held
 * at the site any more as far as the hub is concerned: what it still holds
 * (its destroys unanswered, or forced) becomes `superseded` with the reason,
 * so that no later command, rotation or drift check addresses a site that is
 * gone. What it held stays recorded in site_key_records.
 */
export async function releaseSiteDistributions(m: Queryable, listenerId: string): Promise<number> {
  const rows: unknown[] = await m.query(
    `WITH u AS (UPDATE distributions SET state = 'superseded', error_code = 'LISTENER_DECOMMISSIONED', error_detail = 'the site was decommissioned', updated_at = now()
                 WHERE listener_id = $1 AND state NOT IN ('superseded', 'destroyed') RETURNING id) SELECT id FROM u`,
    [listenerId],
  );
  return rows.length;
}

/** One key version at one target of a site, as listed for re-keying or recorded at decommission. */
export interface SiteKeyRow {
  key_id: string;
  key_name: string;
  key_version_id: string;
  version: number;
  target: string;
  state: string;
  held_elsewhere: boolean;
}

/**
 * `site-key-holdings`: what a site holds (confirmed) or was sent (a package
 * was issued to it: it travelled under the site's root KEK and may have
 * been imported even if its receipt never came), with whether another site
 * that is still in service holds the same version.
 */
export async function siteKeyHoldings(m: Queryable, listenerId: string): Promise<SiteKeyRow[]> {
  const rows: SiteKeyRow[] = await m.query(
    `SELECT k.id AS key_id, k.name AS key_name, d.key_version_id, kv.version, d.target, d.state,
            EXISTS (SELECT 1 FROM distributions o JOIN listeners ol ON ol.id = o.listener_id
                     WHERE o.key_version_id = d.key_version_id AND o.listener_id <> d.listener_id AND o.state = 'confirmed'
                       AND ol.state NOT IN ('decommissioning', 'decommissioned', 'revoked')) AS held_elsewhere
       FROM distributions d JOIN key_versions kv ON kv.id = d.key_version_id JOIN keys k ON k.id = kv.key_id
      WHERE d.listener_id = $1 AND (d.state = 'confirmed' OR d.last_package_id IS NOT NULL)
      ORDER BY k.name, kv.version, d.target`,
    [listenerId],
  );
  return rows.map((r) => ({ ...r, version: Number(r.version) }));
}

export interface LifecycleEvent {
  id: string;
  listenerId: string;
  kind: 'kek_compromised' | 'decommission';
  reason: string | null;
  createdBy: string;
  deadline: Date | null;
  commandIds: string[];
  finished: boolean;
  streamCleanup: 'packages' | 'all' | null;
}

/** `insert-lifecycle-event` with its site key records. */
export async function insertLifecycleEvent(m: Queryable, e: LifecycleEvent, keys: SiteKeyRow[]): Promise<void> {
  await m.query(
    `INSERT INTO site_lifecycle_events (id, listener_id, kind, reason, created_by, deadline, command_ids, finished_at, stream_cleanup)
     VALUES ($1, $2, $3, $4, $5, $6, $7::uuid[], CASE WHEN $8 THEN now() END, $9)`,
    [e.id, e.listenerId, e.kind, e.reason, e.createdBy, e.deadline, e.commandIds, e.finished, e.streamCleanup],
  );
  if (!keys.length) return;
  await m.query(
    `INSERT INTO site_key_records (event_id, key_version_id, target, state, held_elsewhere)
     SELECT $1, v.kv, v.t, v.s, v.h FROM unnest($2::uuid[], $3::text[], $4::text[], $5::boolean[]) AS v(kv, t, s, h)`,
    [e.id, keys.map((k) => k.key_version_id), keys.map((k) => k.target), keys.map((k) => k.state), keys.map((k) => k.held_elsewhere)],
  );
}

/** `site-key-records`: what a lifecycle event recorded, with the key names. */
export async function siteKeyRecords(m: Queryable, eventId: string): Promise<SiteKeyRow[]> {
  const rows: SiteKeyRow[] = await m.query(
    `SELECT k.id AS key_id, k.name AS key_name, r.key_version_id, kv.version, r.target, r.state, r.held_elsewhere
       FROM site_key_records r JOIN key_versions kv ON kv.id = r.key_version_id JOIN keys k ON k.id = kv.key_id
      WHERE r.event_id = $1 ORDER BY k.name, kv.version, r.target`,
    [eventId],
  );
  return rows.map((r) => ({ ...r, version: Number(r.version) }));
}

/** `open-decommission`: the site's decommission under way, locked. */
export async function openDecommission(m: Queryable, listenerId: string): Promise<{ id: string; deadline: Date | null; command_ids: string[] } | undefined> {
  const [row] = await m.query(
    `SELECT id, deadline, command_ids FROM site_lifecycle_events WHERE listener_id = $1 AND kind = 'decommission' AND finished_at IS NULL ORDER BY created_at DESC LIMIT 1 FOR UPDATE`,
    [listenerId],
  );
  return row as { id: string; deadline: Date | null; command_ids: string[] } | undefined;
}

/** `last-decommission`: the most recent decommission of the site (for a repeated call). */
export async function lastDecommission(m: Queryable, listenerId: string): Promise<{ id: string; deadline: Date | null; command_ids: string[] } | undefined> {
  const [row] = await m.query(`SELECT id, deadline, command_ids FROM site_lifecycle_events WHERE listener_id = $1 AND kind = 'decommission' ORDER BY created_at DESC LIMIT 1`, [listenerId]);
  return row as { id: string; deadline: Date | null; command_ids: string[] } | undefined;
}

/** `pending-commands`: how many of these destroy commands the site has not answered yet. */
export async function pendingCommands(m: Queryable, ids: string[]): Promise<number> {
  if (!ids.length) return 0;
  const [row] = await m.query(`SELECT count(*)::int AS n FROM key_commands WHERE id = ANY($1::uuid[]) AND state = 'pending'`, [ids]);
  return Number(row.n);
}

/**
 * `due-decommissions`: decommissions whose site has answered every destroy,
 * or whose deadline passed; claimed with SKIP LOCKED, so each is finished by
 * one hub replica.
 */
export async function dueDecommissions(m: Queryable, limit: number): Promise<Array<{ id: string; listener_id: string }>> {
  return m.query(
    `SELECT e.id, e.listener_id FROM site_lifecycle_events e
      WHERE e.kind = 'decommission' AND e.finished_at IS NULL
        AND (e.deadline <= now() OR NOT EXISTS (SELECT 1 FROM key_commands c WHERE c.id = ANY(e.command_ids) AND c.state = 'pending'))
      ORDER BY e.created_at LIMIT $1 FOR UPDATE OF e SKIP LOCKED`,
    [limit],
  );
}

/** `finish-lifecycle-event`: ended; its stream clean-up becomes everything of the site. */
export async function finishLifecycleEvent(m: Queryable, id: string): Promise<void> {
  await m.query(`UPDATE site_lifecycle_events SET finished_at = now(), stream_cleanup = 'all' WHERE id = $1`, [id]);
}

/** `stream-cleanups-due`: the sites whose DOWN messages (and consumers) are still to be removed. */
export async function streamCleanupsDue(m: Queryable): Promise<Array<{ id: string; listener_id: string; stream_cleanup: 'packages' | 'all' }>> {
  return m.query(`SELECT id, listener_id, stream_cleanup FROM site_lifecycle_events WHERE stream_cleanup IS NOT NULL ORDER BY created_at LIMIT 100`);
}

/** `stream-cleaned`: only if nothing widened the clean-up meanwhile (packages, then all). */
export async function markStreamCleaned(m: Queryable, id: string, what: 'packages' | 'all'): Promise<void> {
  await m.query(`UPDATE site_lifecycle_events SET stream_cleanup = NULL WHERE id = $1 AND stream_cleanup = $2`, [id, what]);
}

/** `reopen-registration`: a site whose root KEK was compromised may enroll again, with the NATS identity it has. */
export async function reopenRegistration(m: Queryable, listenerId: string, expiresAt: Date): Promise<boolean> {
  const rows: unknown[] = await m.query(`WITH u AS (UPDATE listener_registrations SET state = 'open', expires_at = $2 WHERE listener_id = $1 RETURNING listener_id) SELECT * FROM u`, [
    listenerId,
    expiresAt,
  ]);
  return rows.length > 0;
}

/** `lifecycle-command-ids`: the destroy commands a decommission sent. */
export async function lifecycleCommandIds(m: Queryable, eventId: string): Promise<string[]> {
  const [row] = await m.query(`SELECT command_ids FROM site_lifecycle_events WHERE id = $1`, [eventId]);
  return (row?.command_ids as string[] | undefined) ?? [];
}
