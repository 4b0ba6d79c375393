import type { Queryable } from './queryable';

/*
 * The dashboard's reads and its session table. Every read is one page:
 * keyset paging (never OFFSET) with a LIMIT the caller bounds, so a page
 * costs the same with 1,000 sites and 100,000 key versions as with ten.
 */

/** LIKE wildcards in a prefix are taken literally. */
function likePrefix(prefix: string | null): string | null {
  return prefix === null ? null : `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export interface VersionRow {
  key_name: string;
  algorithm: string;
  key_state: string;
  current_version: number;
  version: number;
  state: string;
  kcv: string;
  created_at: Date;
  confirmed: number;
  unconfirmed: number;
  failed: number;
}

/** Named statement `dashboard-version-page`: key versions by (key name, version) after a cursor, with their distribution counts. */
export async function versionPage(m: Queryable, q: { prefix: string | null; afterName: string | null; afterVersion: number; limit: number }): Promise<VersionRow[]> {
  return m.query(
    `SELECT k.name AS key_name, k.algorithm, k.state AS key_state, k.current_version, v.version, v.state, v.kcv, v.created_at,
            coalesce(d.confirmed, 0)::int AS confirmed, coalesce(d.unconfirmed, 0)::int AS unconfirmed, coalesce(d.failed, 0)::int AS failed
       FROM (SELECT k.* FROM keys k
              WHERE ($1::text IS NULL OR k.name LIKE $1) AND ($2::text IS NULL OR k.name >= $2)
              ORDER BY k.name LIMIT $4 + 1) k
       JOIN key_versions v ON v.key_id = k.id AND ($2::text IS NULL OR (k.name, v.version) > ($2::text, $3::int))
       LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE state = 'confirmed') AS confirmed,
                                 count(*) FILTER (WHERE state IN ('queued', 'sent')) AS unconfirmed,
                                 count(*) FILTER (WHERE state = 'failed') AS failed
                            FROM distributions WHERE key_version_id = v.id) d ON true
      ORDER BY k.name, v.version LIMIT $4`,
    [likePrefix(q.prefix), q.afterName, q.afterVersion, q.limit],
  );
}

/** Named statement `dashboard-key-names`: a page of key names (rows of the matrix). */
export async function keyNamePage(m: Queryable, prefix: string | null, after: string | null, limit: number): Promise<Array<{ id: string; name: string; current_version: number }>> {
  return m.query(`SELECT id, name, current_version FROM keys WHERE ($1::text IS NULL OR name LIKE $1) AND ($2::text IS NULL OR name > $2) ORDER BY name LIMIT $3`, [likePrefix(prefix), after, limit]);
}

/** Named statement `dashboard-site-ids`: a page of listener ids (columns of the matrix). */
export async function siteIdPage(m: Queryable, prefix: string | null, after: string | null, limit: number): Promise<Array<{ id: string; state: string }>> {
  return m.query(`SELECT id, state FROM listeners WHERE ($1::text IS NULL OR id LIKE $1) AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3`, [likePrefix(prefix), after, limit]);
}

export interface MatrixCellRow {
  key_id: string;
  listener_id: string;
  version: number;
  state: string;
  n: number;
}

/**
 * Named statement `dashboard-matrix-cells`: for each (key, site) of one page,
 * the states of the distributions of the newest version that went to that
 * site, counted per state (one row per state, bounded by page size x states).
 * One pass: the page's keys' versions (by the (key_id, version) index), their
 * distributions (by the (key_version_id, listener_id, target) index) at the
 * page's sites, the newest version per cell picked by a window. Measured at
 * 50 keys x 25 sites on 100,000 versions and ~330,000 distributions: 5-50 ms
 * (the former max-then-join-back form: 210-340 ms, re-reading every
 * distribution of a key held at 1,000 sites once per cell).
 */
export async function matrixCells(m: Queryable, keyIds: string[], siteIds: string[]): Promise<MatrixCellRow[]> {
  if (keyIds.length === 0 || siteIds.length === 0) return [];
  return m.query(
    `SELECT key_id, listener_id, version, state, count(*)::int AS n
       FROM (SELECT v.key_id, d.listener_id, v.version, d.state, max(v.version) OVER (PARTITION BY v.key_id, d.listener_id) AS newest
               FROM unnest($1::uuid[]) AS k(id)
               JOIN key_versions v ON v.key_id = k.id
               JOIN distributions d ON d.key_version_id = v.id
              WHERE d.listener_id = ANY($2::text[])) c
      WHERE version = newest
      GROUP BY key_id, listener_id, version, state`,
    [keyIds, siteIds],
  );
}

export interface SiteHealthRow {
  id: string;
  state: string;
  hostname: string | null;
  last_seen_at: Date | null;
  backlog: number;
  failed: number;
  oldest_unconfirmed: Date | null;
}

/** Named statement `dashboard-site-health`: one page of listeners with last heartbeat and backlog (unconfirmed distributions), counted for that page only. */
export async function siteHealthPage(m: Queryable, prefix: string | null, after: string | null, limit: number): Promise<SiteHealthRow[]> {
  return m.query(
    `SELECT l.id, l.state, l.hostname, l.last_seen_at, coalesce(b.backlog, 0)::int AS backlog, coalesce(b.failed, 0)::int AS failed, b.oldest AS oldest_unconfirmed
       FROM (SELECT * FROM listeners WHERE ($1::text IS NULL OR id LIKE $1) AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3) l
       LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE state IN ('queued', 'sent')) AS backlog, count(*) FILTER (WHERE state = 'failed') AS failed,
                                 min(created_at) FILTER (WHERE state IN ('queued', 'sent')) AS oldest
                            FROM distributions WHERE listener_id = l.id AND confirmed_at IS NULL) b ON true
      ORDER BY l.id`,
    [likePrefix(prefix), after, limit],
  );
}

/** Named statement `dashboard-audit-event`: one audit event by sequence number. */
export async function auditEventBySeq(m: Queryable, seq: number): Promise<Record<string, unknown> | undefined> {
  const [row] = await m.query('SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_events WHERE seq = $1', [seq]);
  return row;
}

/** Named statement `dashboard-audit-recent`: the newest events, before a cursor, newest first. */
export async function auditEventsBefore(m: Queryable, before: number | null, limit: number): Promise<Array<Record<string, unknown>>> {
  return m.query('SELECT seq, at, actor, action, subject FROM audit_events WHERE ($1::bigint IS NULL OR seq < $1) ORDER BY seq DESC LIMIT $2', [before, limit]);
}

/** An audit event as stored text (no type parsing): its columns, the time in epoch milliseconds (what the chain hash covers), and the whole row as PostgreSQL prints a record. */
export interface AuditRowText {
  seq: string;
  ms: string;
  actor: string;
  action: string;
  subject: string;
  details: string;
  prev_hash: string;
  hash: string;
  row: string;
}

/** The stored row, every column, in PostgreSQL's record text form (fields quoted and escaped, so no two rows print alike). */
const AUDIT_ROW = '(e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash, e.hash)::text';

/**
 * Named statement `dashboard-audit-text`: the next `limit` events of the
 * chain after `after`, oldest first (a walk of the primary key), as text.
 * The time is cut to whole milliseconds in SQL (exact numeric arithmetic),
 * as the chain hash and a JavaScript Date hold it.
 */
export async function auditRowsText(m: Queryable, after: number, limit: number): Promise<AuditRowText[]> {
  return m.query(
    `SELECT e.seq::text AS seq, floor(extract(epoch FROM e.at) * 1000)::text AS ms, e.actor, e.action, e.subject, e.details::text AS details, e.prev_hash, e.hash,
            ${AUDIT_ROW} AS row
       FROM audit_events e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2`,
    [after, limit],
  );
}

/** Named statement `dashboard-audit-rows`: the same events as `dashboard-audit-text`, only their seq and record text (one field to read per row). */
export async function auditRowsOnly(m: Queryable, after: number, limit: number): Promise<Array<Pick<AuditRowText, 'seq' | 'row'>>> {
  return m.query(`SELECT e.seq::text AS seq, ${AUDIT_ROW} AS row FROM audit_events e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2`, [after, limit]);
}

// ---------------------------------------------------------------- sessions ---

export interface SessionAuthRow {
  operator_id: string;
  operator_name: string;
  operator_roles: string[];
  operator_state: string;
  token_id: string;
  token_roles: string[] | null;
  token_expires_at: Date;
  token_revoked_at: Date | null;
  expires_at: Date;
  last_seen_at: Date;
}

export async function insertSession(m: Queryable, s: { idHash: Buffer; operatorId: string; tokenId: string; expiresAt: Date }): Promise<void> {
  await m.query('INSERT INTO dashboard_sessions (id_hash, operator_id, token_id, expires_at) VALUES ($1, $2, $3, $4)', [s.idHash, s.operatorId, s.tokenId, s.expiresAt]);
}

/** Named statement `dashboard-session-auth`: a session with the token and operator it rests on, read afresh on every request. */
export async function sessionForAuth(m: Queryable, idHash: Buffer): Promise<SessionAuthRow | undefined> {
  const [row] = await m.query(
    `SELECT o.id AS operator_id, o.name AS operator_name, o.roles AS operator_roles, o.state AS operator_state,
            t.id AS token_id, t.roles AS token_roles, t.expires_at AS token_expires_at, t.revoked_at AS token_revoked_at,
            s.expires_at, s.last_seen_at
       FROM dashboard_sessions s JOIN api_tokens t ON t.id = s.token_id JOIN operators o ON o.id = s.operator_id
      WHERE s.id_hash = $1`,
    [idHash],
  );
  return row;
}

/** Marks use (for the idle timeout), at most every few seconds so a busy page does not write on every request. */
export async function touchSession(m: Queryable, idHash: Buffer): Promise<void> {
  await m.query(`UPDATE dashboard_sessions SET last_seen_at = now() WHERE id_hash = $1 AND last_seen_at < now() - interval '5 seconds'`, [idHash]);
}

export async function deleteSession(m: Queryable, idHash: Buffer): Promise<void> {
  await m.query('DELETE FROM dashboard_sessions WHERE id_hash = $1', [idHash]);
}

/** Named statement `dashboard-session-sweep`: sessions past their absolute or idle expiry, or resting on a revoked token or operator. */
export async function sweepSessions(m: Queryable, idleSeconds: number): Promise<void> {
  await m.query(
    `DELETE FROM dashboard_sessions s USING api_tokens t, operators o
      WHERE t.id = s.token_id AND o.id = s.operator_id
        AND (s.expires_at <= now() OR s.last_seen_at <= now() - make_interval(secs => $1) OR t.revoked_at IS NOT NULL OR o.state <> 'active')`,
    [idleSeconds],
  );
}
