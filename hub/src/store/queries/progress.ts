import type { Queryable } from './queryable';

export interface ProgressCounts {
  total: number;
  confirmed: number;
  failed: number;
  failures: Array<{ key: string; version: number; listener_id: string; target: string; error_code: string | null }>;
}

/**
 * The state of every distribution of these key versions to these listeners
 * (optionally to these targets only), counted in one pass: what a
 * `distribute --wait` follows. `pairs` null means every listener.
 */
export async function distributionProgress(m: Queryable, versionIds: string[], pairs: Array<{ listenerId: string; target: string }> | null): Promise<ProgressCounts> {
  const listeners = pairs ? pairs.map((p) => p.listenerId) : null;
  const targets = pairs ? pairs.map((p) => p.target) : null;
  const filter = `d.key_version_id = ANY($1::uuid[])
        AND ($2::text[] IS NULL OR (d.listener_id, d.target) IN (SELECT * FROM unnest($2::text[], $3::text[])))`;
  const [counts] = await m.query(
    `SELECT count(*)::int AS total, count(*) FILTER (WHERE d.state = 'confirmed')::int AS confirmed, count(*) FILTER (WHERE d.state = 'failed')::int AS failed
       FROM distributions d WHERE ${filter}`,
    [versionIds, listeners, targets],
  );
  const failures = await m.query(
    `SELECT k.name AS key, v.version, d.listener_id, d.target, d.error_code
       FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
      WHERE d.state = 'failed' AND ${filter} ORDER BY k.name, d.listener_id LIMIT 100`,
    [versionIds, listeners, targets],
  );
  return { total: counts.total, confirmed: counts.confirmed, failed: counts.failed, failures };
}
