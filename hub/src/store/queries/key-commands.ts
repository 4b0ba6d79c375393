import type { EntityManager } from 'typeorm';
import { insertUnnest } from './bulk';
import type { OutboxRow } from './outbox';
import type { Queryable } from './queryable';

/** A key version as a command names it. */
export interface CommandVersion {
  version_id: string;
  key_id: string;
  name: string;
  version: number;
  kcv: string;
  usages: string[];
}

/** Where a version is held or was sent: its distributions that did not fail, were not superseded and were not destroyed. */
export interface CommandHolder {
  key_version_id: string;
  listener_id: string;
  target: string;
}

export async function commandVersions(m: Queryable, versionIds: string[]): Promise<CommandVersion[]> {
  return m.query(
    `SELECT v.id AS version_id, k.id AS key_id, k.name, v.version, v.kcv, k.usages
       FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE v.id = ANY($1::uuid[])`,
    [versionIds],
  );
}

/** The recorded state of each version (read under the audit chain lock, which every state change takes first). */
export async function versionStates(m: Queryable, versionIds: string[]): Promise<Map<string, string>> {
  if (versionIds.length === 0) return new Map();
  const rows: Array<{ id: string; state: string }> = await m.query('SELECT id, state FROM key_versions WHERE id = ANY($1::uuid[])', [versionIds]);
  return new Map(rows.map((r) => [r.id, r.state]));
}

export async function commandHolders(m: Queryable, versionIds: string[]): Promise<CommandHolder[]> {
  return m.query(
    `SELECT key_version_id, listener_id, target FROM distributions
      WHERE key_version_id = ANY($1::uuid[]) AND state NOT IN ('failed', 'superseded', 'destroyed')
      ORDER BY listener_id, target`,
    [versionIds],
  );
}

/** Rows of (id, key_version_id, listener_id, target, action, urgent, state, subject, envelope, envelope_sha256, reason, created_by, created_at, last_queued_at). */
export async function insertKeyCommands(m: EntityManager, rows: unknown[][]): Promise<void> {
  // Through unnest: a compromise at 1,000 sites is one statement with 14 array parameters, not 14,000 bind parameters.
  await insertUnnest(
    m,
    'key_commands',
    {
      id: 'uuid',
      key_version_id: 'uuid',
      listener_id: 'text',
      target: 'text',
      action: 'text',
      urgent: 'boolean',
      state: 'text',
      subject: 'text',
      envelope: 'bytea',
      envelope_sha256: 'bytea',
      reason: 'text',
      created_by: 'text',
      created_at: 'timestamptz',
      last_queued_at: 'timestamptz',
    },
    rows,
  );
}

/** Rows of (subject, msg_id, payload, priority): priority 1 is the urgent lane, claimed first by the relay. */
export async function insertCommandOutbox(m: EntityManager, rows: unknown[][]): Promise<void> {
  await insertUnnest(m, 'outbox', { subject: 'text', msg_id: 'text', payload: 'bytea', priority: 'smallint' }, rows);
}

/**
 * The urgent rows (compromise, destroy) first: claimed and deleted like
 * claimOutboxBatch, through a partial index that holds only them, so a
 * pass with none costs one index probe.
 */
export async function claimUrgentOutboxBatch(m: Queryable, limit: number): Promise<OutboxRow[]> {
  return m.query(
    `WITH claimed AS (DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE priority > 0 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
                           RETURNING id, subject, msg_id, payload, distribution_id)
         SELECT * FROM claimed ORDER BY id`,
    [limit],
  );
}

export interface StoredCommand {
  id: string;
  key_version_id: string;
  listener_id: string;
  target: string;
  action: string;
  state: string;
  envelope_sha256: Buffer;
}

/** The command a receipt answers, locked for the rest of the transaction. */
export async function lockCommand(m: Queryable, id: string): Promise<StoredCommand | undefined> {
  const [row] = await m.query('SELECT id, key_version_id, listener_id, target, action, state, envelope_sha256 FROM key_commands WHERE id = $1 FOR UPDATE', [id]);
  return row as StoredCommand | undefined;
}

export async function answerCommand(
  m: Queryable,
  id: string,
  a: { state: 'confirmed' | 'failed'; outcome: string; effect: string | null; errorCode: string | null; errorDetail: string | null },
): Promise<void> {
  await m.query(`UPDATE key_commands SET state = $2, outcome = $3, effect = $4, error_code = $5, error_detail = $6, answered_at = now() WHERE id = $1`, [
    id,
    a.state,
    a.outcome,
    a.effect,
    a.errorCode,
    a.errorDetail,
  ]);
}

/** After a confirmed destroy: the version is no longer held at that target, and no longer counts as held. */
export async function markDistributionDestroyed(m: Queryable, keyVersionId: string, listenerId: string, target: string): Promise<string[]> {
  const [rows] = await m.query(
    `UPDATE distributions SET state = 'destroyed', updated_at = now()
      WHERE key_version_id = $1 AND listener_id = $2 AND target = $3 AND state <> 'destroyed' RETURNING id`,
    [keyVersionId, listenerId, target],
  );
  return (rows as Array<{ id: string }>).map((r) => r.id);
}

export interface DueCommand {
  id: string;
  subject: string;
  envelope: Buffer;
  attempts: number;
  urgent: boolean;
  listener_id: string;
}

/**
 * Pending commands queued longer ago than their back-off allows (doubling,
 * at most 16 times the base), to listeners heard from within the online
 * window, claimed (SKIP LOCKED) for a re-send. An offline site gets its
 * commands from its durable consumers when it is back.
 */
export async function claimDueCommands(m: Queryable, afterSeconds: number, onlineWindowSeconds: number, limit: number): Promise<DueCommand[]> {
  return m.query(
    `SELECT c.id, c.subject, c.envelope, c.attempts, c.urgent, c.listener_id FROM key_commands c JOIN listeners l ON l.id = c.listener_id
      WHERE c.state = 'pending' AND c.last_queued_at < now() - make_interval(secs => $1 * least(power(2, c.attempts - 1), 16))
        AND l.last_seen_at > now() - make_interval(secs => $2)
      ORDER BY c.last_queued_at LIMIT $3 FOR UPDATE OF c SKIP LOCKED`,
    [afterSeconds, onlineWindowSeconds, limit],
  );
}

export async function markCommandsRequeued(m: Queryable, ids: string[]): Promise<void> {
  await m.query('UPDATE key_commands SET attempts = attempts + 1, last_queued_at = now() WHERE id = ANY($1::uuid[])', [ids]);
}

export interface CommandStatusRow {
  key: string;
  version: number;
  command_id: string;
  action: string;
  listener_id: string;
  target: string;
  state: string;
  outcome: string | null;
  effect: string | null;
  error_code: string | null;
  attempts: number;
  created_at: Date;
  answered_at: Date | null;
}

/** Every command sent for the key's versions (or every key's), newest first per version and site. */
export async function commandStatusRows(m: Queryable, keyName: string | null): Promise<CommandStatusRow[]> {
  return m.query(
    `SELECT k.name AS key, v.version, c.id AS command_id, c.action, c.listener_id, c.target, c.state, c.outcome, c.effect, c.error_code, c.attempts, c.created_at, c.answered_at
       FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
      WHERE ($1::text IS NULL OR k.name = $1)
      ORDER BY k.name, v.version, c.created_at, c.listener_id, c.target`,
    [keyName],
  );
}
