import type { DriftFinding } from '../../domain/drift';
import type { Queryable } from './queryable';

/** One row of the drift join: an expected item, a reported one, or both (columns of the missing side are null). */
export interface DriftCandidateRow {
  listener_id: string;
  target: string;
  e_key_id: string | null;
  e_version: number | null;
  e_kcv: string | null;
  vstate: string | null;
  /** The distribution's state ('destroyed' once a destroy was confirmed at the site). */
  dstate: string | null;
  settled: boolean | null;
  key_version_id: string | null;
  distribution_id: string | null;
  object_id: string | null;
  r_key_id: string | null;
  r_version: number | null;
  label: string | null;
  r_kcv: string | null;
  r_state: string | null;
}

/**
 * The drift scan, set-based: every distribution at a target the inventory
 * read (expected) FULL JOIN every item the inventory holds (reported), on
 * (listener, target, key, version), for the listeners given (null: all with
 * an inventory) that are active (a site being re-keyed or decommissioned is
 * not judged, and its open findings stay as they were). Only rows that can be drift come back: healthy pairs (an
 * active version, present, usable, same KCV; a version destroyed at the
 * site and absent) are filtered in the database,
 * so a scan over 100,000 healthy items returns nothing. A distribution is
 * settled when it was confirmed (or otherwise last changed) before the
 * inventory was taken, and not in flight (queued, sent, failed), and no
 * command for its version at that target is in flight or was answered after
 * the inventory was taken: a report read before a compromise (or suspend...)
 * was carried out still shows the old state, and judging it against the new
 * one would queue the same command again.
 */
export async function driftCandidates(m: Queryable, listenerIds: string[] | null): Promise<DriftCandidateRow[]> {
  return m.query(
    `WITH inv AS (SELECT i.listener_id, i.report_id, i.taken_at, i.targets FROM listener_inventories i JOIN listeners l ON l.id = i.listener_id AND l.state = 'active'
                   WHERE $1::text[] IS NULL OR i.listener_id = ANY($1::text[])),
          e AS (SELECT d.listener_id, d.target, v.key_id, v.version, v.kcv, v.state AS vstate, d.state AS dstate, v.id AS key_version_id, d.id AS distribution_id,
                       CASE WHEN d.state IN ('queued', 'sent', 'failed') THEN false
                            WHEN d.state = 'confirmed' THEN coalesce(d.confirmed_at < inv.taken_at, false)
                            ELSE d.updated_at < inv.taken_at END
                       AND NOT EXISTS (SELECT 1 FROM key_commands c WHERE c.key_version_id = d.key_version_id AND c.listener_id = d.listener_id AND c.target = d.target
                                          AND (c.state = 'pending' OR c.answered_at >= inv.taken_at)) AS settled
                  FROM inv JOIN distributions d ON d.listener_id = inv.listener_id AND d.target = ANY(inv.targets)
                  JOIN key_versions v ON v.id = d.key_version_id),
          r AS (SELECT i.listener_id, i.target, i.object_id, i.key_id, i.version, i.label, i.kcv, i.state
                  FROM inv JOIN inventory_items i ON i.listener_id = inv.listener_id AND i.report_id = inv.report_id)
     SELECT coalesce(e.listener_id, r.listener_id) AS listener_id, coalesce(e.target, r.target) AS target,
            e.key_id AS e_key_id, e.version AS e_version, e.kcv AS e_kcv, e.vstate, e.dstate, e.settled, e.key_version_id, e.distribution_id,
            r.object_id, r.key_id AS r_key_id, r.version AS r_version, r.label, r.kcv AS r_kcv, r.state AS r_state
       FROM e FULL JOIN r ON r.listener_id = e.listener_id AND r.target = e.target AND r.key_id = e.key_id AND r.version = e.version
      WHERE e.key_id IS NULL
         OR (e.settled AND r.listener_id IS NULL AND e.dstate <> 'destroyed')
         OR (e.settled AND r.listener_id IS NOT NULL AND (e.dstate = 'destroyed' OR e.vstate <> 'active' OR r.state <> 'active' OR r.kcv IS DISTINCT FROM e.kcv))`,
    [listenerIds],
  );
}

/**
 * Records the findings of a scan at `seenAt`: new ones are inserted, known
 * ones only get their last sighting moved. Returns the keys of the new ones
 * (the ones the audit hears about).
 */
export async function upsertFindings(m: Queryable, findings: DriftFinding[], seenAt: Date): Promise<Array<{ listener_id: string; target: string; item: string; kind: string }>> {
  if (findings.length === 0) return [];
  const col = <K extends keyof DriftFinding>(k: K) => findings.map((f) => f[k]);
  return m
    .query(
      `INSERT INTO drift_findings (listener_id, target, item, kind, key_id, version, key_version_id, distribution_id, object_id, label,
                                 expected_kcv, reported_kcv, expected_state, reported_state, first_seen_at, last_seen_at)
          SELECT u.*, $15::timestamptz, $15::timestamptz
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int[], $7::uuid[], $8::uuid[], $9::text[], $10::text[],
                        $11::text[], $12::text[], $13::text[], $14::text[])
                 AS u(listener_id, target, item, kind, key_id, version, key_version_id, distribution_id, object_id, label, expected_kcv, reported_kcv, expected_state, reported_state)
       ON CONFLICT (listener_id, target, item, kind) DO UPDATE
             SET last_seen_at = EXCLUDED.last_seen_at, reported_kcv = EXCLUDED.reported_kcv, reported_state = EXCLUDED.reported_state,
                 expected_state = EXCLUDED.expected_state, distribution_id = EXCLUDED.distribution_id, object_id = EXCLUDED.object_id, label = EXCLUDED.label
       RETURNING listener_id, target, item, kind, (xmax = 0) AS inserted`,
      [
        col('listenerId'),
        col('target'),
        col('item'),
        col('kind'),
        col('keyId'),
        col('version'),
        col('keyVersionId'),
        col('distributionId'),
        col('objectId'),
        col('label'),
        col('expectedKcv'),
        col('reportedKcv'),
        col('expectedState'),
        col('reportedState'),
        seenAt,
      ],
    )
    .then((rows: Array<{ listener_id: string; target: string; item: string; kind: string; inserted: boolean }>) => rows.filter((r) => r.inserted));
}

/** Findings of the scanned listeners that this scan (at `seenAt`) no longer saw: resolved, removed. */
export async function resolveFindings(m: Queryable, listenerIds: string[] | null, seenAt: Date): Promise<Array<{ listener_id: string; target: string; item: string; kind: string }>> {
  return m.query(
    // As a CTE: a bare DELETE ... RETURNING comes back from TypeORM as [rows, count].
    `WITH d AS (DELETE FROM drift_findings WHERE ($1::text[] IS NULL OR listener_id = ANY($1::text[])) AND last_seen_at < $2
                   AND listener_id IN (SELECT id FROM listeners WHERE state = 'active')
                RETURNING listener_id, target, item, kind)
     SELECT * FROM d`,
    [listenerIds, seenAt],
  );
}

export interface FindingRow {
  listener_id: string;
  target: string;
  kind: string;
  key_name: string | null;
  key_id: string | null;
  version: number | null;
  object_id: string | null;
  label: string | null;
  expected_kcv: string | null;
  reported_kcv: string | null;
  expected_state: string | null;
  reported_state: string | null;
  first_seen_at: Date;
  last_seen_at: Date;
}

export async function listFindings(m: Queryable, listenerId: string | undefined, limit: number): Promise<FindingRow[]> {
  return m.query(
    `SELECT f.listener_id, f.target, f.kind, k.name AS key_name, f.key_id, f.version, f.object_id, f.label, f.expected_kcv, f.reported_kcv,
            f.expected_state, f.reported_state, f.first_seen_at, f.last_seen_at
       FROM drift_findings f LEFT JOIN keys k ON k.id = f.key_id
      WHERE $1::text IS NULL OR f.listener_id = $1
      ORDER BY f.listener_id, f.target, f.kind, f.item LIMIT $2`,
    [listenerId ?? null, limit],
  );
}

/** Open findings per kind (for the report and the metrics scrape). */
export async function countFindingsByKind(m: Queryable, listenerId?: string): Promise<Array<{ kind: string; n: number }>> {
  return m.query(`SELECT kind, count(*)::int AS n FROM drift_findings WHERE $1::text IS NULL OR listener_id = $1 GROUP BY kind`, [listenerId ?? null]);
}

/** Confirmed distributions whose key a site lost, locked for a re-push (SKIP LOCKED: another replica healing the same row wins). */
export async function lockConfirmedForRepush(m: Queryable, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows: Array<{ id: string }> = await m.query(`SELECT id FROM distributions WHERE id = ANY($1::uuid[]) AND state = 'confirmed' ORDER BY id FOR UPDATE SKIP LOCKED`, [ids]);
  return rows.map((r) => r.id);
}

/** Re-pushed after drift: queued again with its new package, one attempt (the previous delivery was confirmed). */
export async function requeueRepushed(m: Queryable, issued: Array<{ distributionId: string; packageId: string }>): Promise<void> {
  await m.query(
    `UPDATE distributions d SET state = 'queued', attempts = 1, last_package_id = v.pkg::uuid, error_code = NULL, error_detail = NULL, updated_at = now()
             FROM (SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS pkg) v WHERE d.id = v.id::uuid`,
    [issued.map((i) => i.distributionId), issued.map((i) => i.packageId)],
  );
}

/** Drift scans run one at a time across hub replicas (a scan per arriving inventory and the periodic full scan). */
export async function lockDriftScans(m: Queryable): Promise<void> {
  await m.query(`SELECT pg_advisory_xact_lock(hashtext('keyhub.drift.scan'))`);
}
