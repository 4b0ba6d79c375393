import type { Queryable } from './queryable';

/** A placement row as the operations read it. */
export interface PlacementRow {
  id: string;
  name: string;
  key_id: string;
  key_name: string;
  key_sensitive: boolean;
  current_version: number;
  listener_ids: string[];
  selector: Record<string, string> | null;
  targets: string[];
  future_versions: boolean;
  future_sites: boolean;
  destroy_extras: boolean;
  version: number;
  approved_sites: string[] | null;
  pending_request_id: string | null;
  /** State of the pending widening request (null when there is none). */
  pending_state: string | null;
  last_widening_sha: string | null;
  created_by: string;
  created_by_operator: string;
  created_at: Date;
}

export interface NewPlacement {
  id: string;
  name: string;
  keyId: string;
  listenerIds: string[];
  selector: Record<string, string> | null;
  targets: string[];
  futureVersions: boolean;
  futureSites: boolean;
  destroyExtras: boolean;
  version: number;
  approvedSites: string[] | null;
  createdBy: string;
  createdByOperator: string;
}

const PLACEMENT_COLUMNS = `p.id, p.name, p.key_id, k.name AS key_name, k.sensitive AS key_sensitive, k.current_version, p.listener_ids, p.selector, p.targets,
       p.future_versions, p.future_sites, p.destroy_extras, p.version, p.approved_sites, p.pending_request_id, r.state AS pending_state,
       p.last_widening_sha, p.created_by, p.created_by_operator, p.created_at`;
const PLACEMENT_FROM = `placements p JOIN keys k ON k.id = p.key_id LEFT JOIN approval_requests r ON r.id = p.pending_request_id`;

export async function listPlacementRows(m: Queryable): Promise<PlacementRow[]> {
  return m.query(`SELECT ${PLACEMENT_COLUMNS} FROM ${PLACEMENT_FROM} ORDER BY p.name`);
}

export async function placementByName(m: Queryable, name: string, lock = false): Promise<PlacementRow | undefined> {
  const [row] = await m.query(`SELECT ${PLACEMENT_COLUMNS} FROM ${PLACEMENT_FROM} WHERE p.name = $1${lock ? ' FOR UPDATE OF p' : ''}`, [name]);
  return row;
}

export async function placementById(m: Queryable, id: string, lock = false): Promise<PlacementRow | undefined> {
  const [row] = await m.query(`SELECT ${PLACEMENT_COLUMNS} FROM ${PLACEMENT_FROM} WHERE p.id = $1${lock ? ' FOR UPDATE OF p' : ''}`, [id]);
  return row;
}

/** Inserts a placement; false when the name is taken. */
export async function insertPlacement(m: Queryable, p: NewPlacement): Promise<boolean> {
  const rows: unknown[] = await m.query(
    `INSERT INTO placements (id, name, key_id, listener_ids, selector, targets, future_versions, future_sites, destroy_extras, version, approved_sites, created_by, created_by_operator)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (name) DO NOTHING RETURNING id`,
    [
      p.id,
      p.name,
      p.keyId,
      p.listenerIds,
      p.selector === null ? null : JSON.stringify(p.selector),
      p.targets,
      p.futureVersions,
      p.futureSites,
      p.destroyExtras,
      p.version,
      p.approvedSites,
      p.createdBy,
      p.createdByOperator,
    ],
  );
  return rows.length === 1;
}

export async function deletePlacementRow(m: Queryable, id: string): Promise<void> {
  await m.query('DELETE FROM placements WHERE id = $1', [id]);
}

/**
 * Every (placement, listener, target) the placements match now: active
 * listeners named by id or carrying every label of the selector (one GIN
 * containment test), expanded to their targets (all, or the named ones)
 * of a kind the key's target policy allows (issue 12).
 */
export async function desiredPlacementSites(m: Queryable): Promise<Array<{ placement_id: string; listener_id: string; target: string }>> {
  return m.query(
    `SELECT p.id AS placement_id, l.id AS listener_id, t.name AS target
       FROM placements p
       JOIN keys k ON k.id = p.key_id
       JOIN listeners l ON l.state = 'active' AND (l.id = ANY(p.listener_ids) OR (p.selector IS NOT NULL AND l.labels @> p.selector))
       CROSS JOIN LATERAL jsonb_to_recordset(l.targets) AS t(name text, kind text)
      WHERE (cardinality(p.targets) = 0 OR t.name = ANY(p.targets)) AND coalesce(t.kind, 'pkcs11') = ANY(k.target_kinds)
      ORDER BY p.id, l.id, t.name`,
  );
}

/** What each placement has placed, with the version number and the site's state. */
export async function placedSites(m: Queryable): Promise<Array<{ placement_id: string; listener_id: string; target: string; key_version_id: string; version: number; listener_state: string }>> {
  return m.query(
    `SELECT s.placement_id, s.listener_id, s.target, s.key_version_id, v.version, l.state AS listener_state
       FROM placement_sites s JOIN key_versions v ON v.id = s.key_version_id JOIN listeners l ON l.id = s.listener_id`,
  );
}

/** Which (listener, target) already have a distribution of each key version (any state but destroyed there). */
export async function distributionSites(m: Queryable, keyVersionIds: string[]): Promise<Array<{ key_version_id: string; listener_id: string; target: string }>> {
  if (keyVersionIds.length === 0) return [];
  // A version destroyed at a site (it left a policy) is not held there: a policy that matches the site again queues it afresh.
  return m.query(`SELECT key_version_id, listener_id, target FROM distributions WHERE key_version_id = ANY($1::uuid[]) AND state <> 'destroyed'`, [keyVersionIds]);
}

/** Key version ids by (key id, version). */
export async function keyVersionIds(m: Queryable, pairs: Array<{ keyId: string; version: number }>): Promise<Array<{ id: string; key_id: string; version: number; kcv: string; state: string }>> {
  if (pairs.length === 0) return [];
  return m.query(
    `SELECT v.id, v.key_id, v.version, v.kcv, v.state FROM key_versions v
       JOIN unnest($1::uuid[], $2::int[]) AS w(key_id, version) ON w.key_id = v.key_id AND w.version = v.version`,
    [pairs.map((p) => p.keyId), pairs.map((p) => p.version)],
  );
}

export async function insertPlacementSites(m: Queryable, placementId: string, keyVersionId: string, sites: Array<{ listenerId: string; target: string }>): Promise<void> {
  if (sites.length === 0) return;
  await m.query(
    `INSERT INTO placement_sites (placement_id, listener_id, target, key_version_id)
          SELECT $1, u.listener_id, u.target, $2 FROM unnest($3::text[], $4::text[]) AS u(listener_id, target)
     ON CONFLICT DO NOTHING`,
    [placementId, keyVersionId, sites.map((s) => s.listenerId), sites.map((s) => s.target)],
  );
}

export async function deletePlacementSites(m: Queryable, placementId: string, sites: Array<{ listenerId: string; target: string; keyVersionId: string }>): Promise<void> {
  if (sites.length === 0) return;
  await m.query(
    `DELETE FROM placement_sites s USING unnest($2::text[], $3::text[], $4::uuid[]) AS u(listener_id, target, kv)
      WHERE s.placement_id = $1 AND s.listener_id = u.listener_id AND s.target = u.target AND s.key_version_id = u.kv`,
    [placementId, sites.map((s) => s.listenerId), sites.map((s) => s.target), sites.map((s) => s.keyVersionId)],
  );
}

/** A widening request was opened for the placement (its hash is kept so the same widening is not asked twice). */
export async function setPendingWidening(m: Queryable, placementId: string, requestId: string, sha: string): Promise<void> {
  await m.query('UPDATE placements SET pending_request_id = $2, last_widening_sha = $3, updated_at = now() WHERE id = $1', [placementId, requestId, sha]);
}

/** An approved widening: the version it names and its sites join what is approved. */
export async function approveWidening(m: Queryable, placementId: string, version: number, sites: string[], replaceSites: boolean): Promise<void> {
  await m.query(
    `UPDATE placements SET version = $2, updated_at = now(), pending_request_id = NULL,
            approved_sites = CASE WHEN $4 THEN $3::text[] ELSE ARRAY(SELECT DISTINCT unnest(coalesce(approved_sites, '{}') || $3::text[])) END
      WHERE id = $1`,
    [placementId, version, sites, replaceSites],
  );
}

export async function listenerLabels(m: Queryable, listenerId: string, lock = false): Promise<{ labels: Record<string, string>; state: string } | undefined> {
  const [row] = await m.query(`SELECT labels, state FROM listeners WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [listenerId]);
  return row;
}

export async function setListenerLabels(m: Queryable, listenerId: string, labels: Record<string, string>): Promise<void> {
  await m.query('UPDATE listeners SET labels = $2 WHERE id = $1', [listenerId, JSON.stringify(labels)]);
}

/** Placements that let go of extras: destroy_extras, per key and site (for extra versions found by drift). */
export async function destroyExtrasSites(m: Queryable): Promise<Array<{ key_id: string; listener_id: string; target: string }>> {
  return m.query(`SELECT DISTINCT p.key_id, s.listener_id, s.target FROM placements p JOIN placement_sites s ON s.placement_id = p.id WHERE p.destroy_extras`);
}

/** Runs `fn` only if this transaction gets the reconcile lock (one hub replica reconciles at a time). */
export async function tryReconcileLock(m: Queryable): Promise<boolean> {
  const [row]: Array<{ ok: boolean }> = await m.query(`SELECT pg_try_advisory_xact_lock(hashtext('keyhub.placements.reconcile')) AS ok`);
  return row.ok;
}

/** Labels of the given listeners. */
export async function listenerLabelsOf(m: Queryable, ids: string[]): Promise<Map<string, Record<string, string>>> {
  if (ids.length === 0) return new Map();
  const rows: Array<{ id: string; labels: Record<string, string> }> = await m.query('SELECT id, labels FROM listeners WHERE id = ANY($1::text[])', [ids]);
  return new Map(rows.map((r) => [r.id, r.labels]));
}

/** New site choice of a placement (ids, selector, targets). */
export async function updatePlacementSites(m: Queryable, id: string, listenerIds: string[], selector: Record<string, string> | null, targets: string[]): Promise<void> {
  await m.query('UPDATE placements SET listener_ids = $2, selector = $3, targets = $4, updated_at = now() WHERE id = $1', [
    id,
    listenerIds,
    selector === null ? null : JSON.stringify(selector),
    targets,
  ]);
}
