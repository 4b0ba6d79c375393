import type { EntityManager } from 'typeorm';
import type { KeyState } from '../../domain/key-lifecycle';
import { insertRows } from './bulk';
import type { Queryable } from './queryable';

/** A key with its lifecycle settings (raw row). */
export interface LifecycleKeyRow {
  id: string;
  name: string;
  algorithm: string;
  usages: string[];
  exportable: boolean;
  sensitive: boolean;
  /** Target policy (issue 12): row-MAC bound, so a new version's MAC binds it too. */
  target_kinds: string[];
  allow_clear_import: boolean;
  state: string;
  current_version: number;
  cryptoperiod_seconds: number | null;
  rotate_every_seconds: number | null;
  grace_seconds: number;
  created_by: string;
  created_at: Date;
}

/** A key version with its lifecycle dates (raw row, no material). */
export interface LifecycleVersionRow {
  id: string;
  key_id: string;
  version: number;
  kcv: string;
  length: number;
  state: string;
  created_at: Date;
  activate_at: Date;
  deactivate_at: Date | null;
  state_changed_at: Date | null;
  state_reason: string | null;
  compromised_at: Date | null;
  destroyed_at: Date | null;
}

const KEY_COLUMNS = `k.id, k.name, k.algorithm, k.usages, k.exportable, k.sensitive, k.target_kinds, k.allow_clear_import, k.state, k.current_version,
  k.cryptoperiod_seconds, k.rotate_every_seconds, k.grace_seconds, k.created_by, k.created_at`;
const VERSION_COLUMNS = `v.id, v.key_id, v.version, v.kcv, v.length, v.state, v.created_at, v.activate_at, v.deactivate_at,
  v.state_changed_at, v.state_reason, v.compromised_at, v.destroyed_at`;

export async function keyByName(m: Queryable, name: string, lock = false): Promise<LifecycleKeyRow | undefined> {
  const [row] = await m.query(`SELECT ${KEY_COLUMNS} FROM keys k WHERE k.name = $1${lock ? ' FOR UPDATE' : ''}`, [name]);
  return row;
}

/** Keys by id, locked, skipping those another transaction holds (a scheduler replica or an operator's rotation). */
export async function claimKeys(m: Queryable, ids: string[]): Promise<LifecycleKeyRow[]> {
  return m.query(`SELECT ${KEY_COLUMNS} FROM keys k WHERE k.id = ANY($1) ORDER BY k.id FOR UPDATE SKIP LOCKED`, [ids]);
}

export async function versionsOfKey(m: Queryable, keyId: string): Promise<LifecycleVersionRow[]> {
  return m.query(`SELECT ${VERSION_COLUMNS} FROM key_versions v WHERE v.key_id = $1 ORDER BY v.version`, [keyId]);
}

/** One version, locked for a state change. */
export async function lockVersion(m: Queryable, keyId: string, version: number): Promise<LifecycleVersionRow | undefined> {
  const [row] = await m.query(`SELECT ${VERSION_COLUMNS} FROM key_versions v WHERE v.key_id = $1 AND v.version = $2 FOR UPDATE`, [keyId, version]);
  return row;
}

/**
 * The state change itself, guarded by the state it was read in. An early
 * activation moves the activation date, and the end of the cryptoperiod
 * with it, to now; a scheduled one keeps the planned dates (the audit event
 * records when it really happened). An early deactivation records now. A destroyed
 * version's wrapped blob is emptied in the same statement (the table refuses
 * a destroyed row that keeps one). Returns whether the row changed.
 */
export async function changeVersionState(m: Queryable, id: string, from: string, to: KeyState, reason: string | null): Promise<boolean> {
  const [rows] = await m.query(
    `UPDATE key_versions SET state = $3, state_changed_at = now(), state_reason = $4,
            activate_at = CASE WHEN $3 = 'active' AND $2 = 'pre-activation' AND activate_at > now() THEN now() ELSE activate_at END,
            deactivate_at = CASE WHEN $3 = 'deactivated' AND (deactivate_at IS NULL OR deactivate_at > now()) THEN now()
                                 WHEN $3 = 'active' AND $2 = 'pre-activation' AND activate_at > now() THEN deactivate_at - (activate_at - now())
                                 ELSE deactivate_at END,
            compromised_at = CASE WHEN $3 = 'compromised' THEN now() ELSE compromised_at END,
            destroyed_at = CASE WHEN $3 = 'destroyed' THEN now() ELSE destroyed_at END,
            wrapped = CASE WHEN $3 = 'destroyed' THEN '\\x'::bytea ELSE wrapped END
      WHERE id = $1 AND state = $2 RETURNING id`,
    [id, from, to, reason],
  );
  return rows.length === 1;
}

/** The key row's state is its current version's state. */
export async function syncKeyStates(m: Queryable, keyIds: string[]): Promise<void> {
  await m.query(
    `UPDATE keys k SET state = v.state FROM key_versions v
      WHERE k.id = ANY($1) AND v.key_id = k.id AND v.version = k.current_version AND k.state <> v.state`,
    [keyIds],
  );
}

/** A scheduled transition that is due: which version, of which key. */
export interface DueVersion {
  id: string;
  key_id: string;
  name: string;
  version: number;
  state: string;
  at: Date;
}

/** Pre-activation versions whose activation date has come, locked; rows another replica holds are skipped. */
export async function claimDueActivations(m: Queryable, limit: number): Promise<DueVersion[]> {
  return m.query(
    `SELECT v.id, v.key_id, k.name, v.version, v.state, v.activate_at AS at FROM key_versions v JOIN keys k ON k.id = v.key_id
      WHERE v.state = 'pre-activation' AND v.activate_at <= now()
      ORDER BY v.activate_at LIMIT $1 FOR UPDATE OF v SKIP LOCKED`,
    [limit],
  );
}

/** Active or suspended versions whose deactivation date (end of cryptoperiod or of a rotation's grace) has come, locked. */
export async function claimDueDeactivations(m: Queryable, limit: number): Promise<DueVersion[]> {
  return m.query(
    `SELECT v.id, v.key_id, k.name, v.version, v.state, v.deactivate_at AS at FROM key_versions v JOIN keys k ON k.id = v.key_id
      WHERE v.state IN ('active', 'suspended') AND v.deactivate_at IS NOT NULL AND v.deactivate_at <= now()
      ORDER BY v.deactivate_at LIMIT $1 FOR UPDATE OF v SKIP LOCKED`,
    [limit],
  );
}

/** Keys whose rotation interval has passed since their current version became active (unlocked: a candidate list). */
export async function dueRotations(m: Queryable, limit: number): Promise<string[]> {
  const rows: Array<{ id: string }> = await m.query(
    `SELECT k.id FROM keys k JOIN key_versions v ON v.key_id = k.id AND v.version = k.current_version
      WHERE k.rotate_every_seconds IS NOT NULL AND v.state = 'active'
        AND v.activate_at + make_interval(secs => k.rotate_every_seconds) <= now()
      ORDER BY v.activate_at LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.id);
}

/** The current version's state and activation of each key, as read under the caller's lock. */
export async function currentVersions(m: Queryable, keyIds: string[]): Promise<LifecycleVersionRow[]> {
  return m.query(`SELECT ${VERSION_COLUMNS} FROM key_versions v JOIN keys k ON k.id = v.key_id AND v.version = k.current_version WHERE k.id = ANY($1)`, [keyIds]);
}

/** Every (listener, target) that holds, or was sent, some version of these keys, at listeners that are still active. */
export async function holdersOfKeys(m: Queryable, keyIds: string[]): Promise<Array<{ key_id: string; listener_id: string; target: string }>> {
  return m.query(
    `SELECT DISTINCT v.key_id, d.listener_id, d.target FROM distributions d
       JOIN key_versions v ON v.id = d.key_version_id JOIN listeners l ON l.id = d.listener_id
      WHERE v.key_id = ANY($1) AND d.state IN ('queued', 'sent', 'confirmed') AND l.state = 'active'
      ORDER BY v.key_id, d.listener_id, d.target`,
    [keyIds],
  );
}

/** Rows of (id, key_id, version, wrapped, length, kcv, state, mac, activate_at, deactivate_at, public_key). */
export async function insertLifecycleVersions(m: EntityManager, rows: unknown[][]): Promise<void> {
  await insertRows(m, 'key_versions', ['id', 'key_id', 'version', 'wrapped', 'length', 'kcv', 'state', 'mac', 'activate_at', 'deactivate_at', 'public_key'], rows);
}

/** After a rotation: the new current version and its state as the key's summary. */
export async function advanceCurrentVersions(m: Queryable, keys: Array<{ id: string; version: number }>): Promise<void> {
  await m.query(`UPDATE keys k SET current_version = w.version, state = 'active' FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::int[]) AS version) w WHERE k.id = w.id`, [
    keys.map((k) => k.id),
    keys.map((k) => k.version),
  ]);
}

/**
 * The older versions of a rotated key stay usable at the sites for the
 * grace period, then the scheduler deactivates them: their deactivation date
 * becomes now + grace, unless it was sooner. Returns the versions and dates set.
 */
export async function setGraceDeadlines(
  m: Queryable,
  keys: Array<{ id: string; keepVersion: number; graceSeconds: number }>,
): Promise<Array<{ id: string; key_id: string; version: number; deactivate_at: Date }>> {
  const [rows] = await m.query(
    `UPDATE key_versions v SET deactivate_at = LEAST(COALESCE(v.deactivate_at, now() + make_interval(secs => w.grace)), now() + make_interval(secs => w.grace))
       FROM (SELECT unnest($1::uuid[]) AS key_id, unnest($2::int[]) AS keep, unnest($3::int[]) AS grace) w
      WHERE v.key_id = w.key_id AND v.version <> w.keep AND v.state IN ('active', 'suspended')
      RETURNING v.id, v.key_id, v.version, v.deactivate_at`,
    [keys.map((k) => k.id), keys.map((k) => k.keepVersion), keys.map((k) => k.graceSeconds)],
  );
  return rows;
}

/** Lifecycle settings and the first version's schedule of keys just created (same transaction as their insert). */
export async function setInitialLifecycle(
  m: Queryable,
  rows: Array<{ keyId: string; cryptoperiodSeconds: number | null; rotateEverySeconds: number | null; graceSeconds: number | null; state: KeyState; activateAt: Date; deactivateAt: Date | null }>,
): Promise<void> {
  if (rows.length === 0) return;
  await m.query(
    `WITH w AS (SELECT unnest($1::uuid[]) AS key_id, unnest($2::int[]) AS cp, unnest($3::int[]) AS re, unnest($4::int[]) AS grace,
                       unnest($5::text[]) AS state, unnest($6::timestamptz[]) AS activate_at, unnest($7::timestamptz[]) AS deactivate_at),
          k AS (UPDATE keys k SET cryptoperiod_seconds = w.cp, rotate_every_seconds = w.re, grace_seconds = COALESCE(w.grace, k.grace_seconds), state = w.state
                  FROM w WHERE k.id = w.key_id)
     UPDATE key_versions v SET state = w.state, activate_at = w.activate_at, deactivate_at = w.deactivate_at FROM w WHERE v.key_id = w.key_id AND v.version = 1`,
    [
      rows.map((r) => r.keyId),
      rows.map((r) => r.cryptoperiodSeconds),
      rows.map((r) => r.rotateEverySeconds),
      rows.map((r) => r.graceSeconds),
      rows.map((r) => r.state),
      rows.map((r) => r.activateAt),
      rows.map((r) => r.deactivateAt),
    ],
  );
}

/** Whether any scheduled transition is due: a cheap probe of the partial indexes, so an idle tick takes no lock. */
export async function scheduledWorkDue(m: Queryable): Promise<{ activations: boolean; deactivations: boolean }> {
  const [row] = await m.query(
    `SELECT EXISTS (SELECT 1 FROM key_versions WHERE state = 'pre-activation' AND activate_at <= now()) AS activations,
            EXISTS (SELECT 1 FROM key_versions WHERE state IN ('active', 'suspended') AND deactivate_at IS NOT NULL AND deactivate_at <= now()) AS deactivations`,
  );
  return { activations: row.activations === true, deactivations: row.deactivations === true };
}

export async function keysByIds(m: Queryable, ids: string[]): Promise<LifecycleKeyRow[]> {
  return m.query(`SELECT ${KEY_COLUMNS} FROM keys k WHERE k.id = ANY($1) ORDER BY k.name`, [ids]);
}
