import type { LifecycleKeyRow } from './key-lifecycle';
import type { Queryable } from './queryable';

/*
 * The statements behind the compliance reports. Each reads one page in a
 * fixed order with keyset paging (a cursor, never OFFSET), so a report over
 * any number of key versions is read a bounded page at a time and costs the
 * same per page wherever it starts.
 */

/** The key a key report is about: read with keyByName (key-lifecycle.ts). */
export type ReportKeyRow = Pick<LifecycleKeyRow, 'id' | 'name' | 'algorithm' | 'state' | 'current_version' | 'sensitive' | 'created_by' | 'created_at'>;

/** Where the key report's previous page ended: version, listener and target ('' for a version sent nowhere). */
export interface KeyRowPosition {
  version: number;
  listenerId: string;
  target: string;
}

export interface KeyReportDbRow {
  version: number;
  version_state: string;
  hub_kcv: string;
  listener_id: string | null;
  target: string | null;
  state: string | null;
  queued_at: Date | null;
  pushed_at: Date | null;
  last_sent_at: Date | null;
  confirmed_at: Date | null;
  target_kcv: string | null;
  created_by: string | null;
  request_id: string | null;
  requester: string | null;
  approvers: string[] | null;
  /** `distributions.cloud`: a cloud target's import, from its confirming receipt. */
  cloud: unknown;
}

/**
 * Which executed dual-control request covered each (version, listener,
 * target) of the key: the request documents name exactly that (see
 * domain/approval-actions.ts: `distribution.sensitive` lists key versions
 * and destinations, `placement.sensitive` one version and its sites as
 * "listener/target"). Approval requests are people's decisions, few next
 * to distributions, so reading their documents once per page is cheap;
 * MATERIALIZED keeps PostgreSQL from inlining it (which would parse every
 * document once per row), and only the documents whose bytes name the key
 * are parsed at all.
 */
const APPROVED_CTE = `approved AS MATERIALIZED (
  SELECT r.id, r.created_at, r.requested_by, e.version, e.listener_id, e.target
    FROM approval_requests r
    CROSS JOIN LATERAL (SELECT convert_from(r.canonical, 'UTF8')::jsonb AS doc) j
    CROSS JOIN LATERAL (
      SELECT (kk->>'version')::int AS version, dd->>'listenerId' AS listener_id, dd->>'target' AS target
        FROM jsonb_array_elements(CASE WHEN j.doc->>'action' = 'distribution.sensitive' THEN j.doc->'keys' ELSE '[]'::jsonb END) kk
       CROSS JOIN jsonb_array_elements(j.doc->'destinations') dd
       WHERE kk->>'name' = $1
      UNION ALL
      SELECT (j.doc->>'version')::int, split_part(s, '/', 1), substr(s, length(split_part(s, '/', 1)) + 2)
        FROM jsonb_array_elements_text(CASE WHEN j.doc->>'action' = 'placement.sensitive' AND j.doc->>'key' = $1 THEN j.doc->'sites' ELSE '[]'::jsonb END) s
    ) e
   WHERE r.state = 'executed' AND r.action IN ('distribution.sensitive', 'placement.sensitive')
     -- Only documents that name the key at all are parsed: their canonical bytes hold its name as a JSON string.
     AND position(convert_to(to_json($1::text)::text, 'UTF8') IN r.canonical) > 0)`;

/**
 * One page of the key report: every version, left-joined with its
 * distributions (a version sent nowhere still has its row), the matching
 * approved request (the latest one made before the distribution) with its
 * requester and approvers, and when the first package was issued.
 * Bounded work per page: the page is chosen among the next `limit + 1`
 * versions (read along the (key_id, version) index; each has at least one
 * row, so they hold a full page after the cursor), and the per-row lookups
 * (packages, approvals) run on the page's rows only.
 */
export async function keyReportPage(m: Queryable, key: { id: string; name: string }, after: KeyRowPosition | undefined, limit: number): Promise<KeyReportDbRow[]> {
  const pos = after ?? { version: 0, listenerId: '', target: '' };
  return m.query(
    `WITH ${APPROVED_CTE},
     vs AS MATERIALIZED (SELECT id, version, state, kcv FROM key_versions WHERE key_id = $2 AND version >= $3 ORDER BY version LIMIT $6 + 1),
     page AS MATERIALIZED (
       SELECT vs.version, vs.state AS version_state, vs.kcv AS hub_kcv, d.id AS distribution_id, d.listener_id, d.target, d.state,
              d.created_at AS queued_at, d.last_sent_at, d.confirmed_at, d.target_kcv, d.created_by, d.cloud
         FROM vs LEFT JOIN distributions d ON d.key_version_id = vs.id
        WHERE (vs.version, coalesce(d.listener_id, ''), coalesce(d.target, '')) > ($3::int, $4::text, $5::text)
        ORDER BY vs.version, coalesce(d.listener_id, ''), coalesce(d.target, '')
        LIMIT $6),
     -- Per distribution of the page, the latest request made before it that names its version and destination (one hash join, not a scan per row).
     matched AS (
       SELECT DISTINCT ON (page.distribution_id) page.distribution_id, ap.id, ap.requested_by
         FROM page JOIN approved ap ON ap.version = page.version AND ap.listener_id = page.listener_id AND ap.target = page.target
        WHERE ap.created_at <= page.queued_at
        ORDER BY page.distribution_id, ap.created_at DESC)
     SELECT page.version, page.version_state, page.hub_kcv, page.listener_id, page.target, page.state, page.queued_at, page.last_sent_at,
            page.confirmed_at, page.target_kcv, page.created_by, page.cloud,
            (SELECT min(p.issued_at) FROM packages p WHERE p.distribution_id = page.distribution_id) AS pushed_at,
            a.id AS request_id, o.name AS requester,
            CASE WHEN a.id IS NOT NULL THEN ARRAY(SELECT od.name FROM approval_decisions ad JOIN operators od ON od.id = ad.operator_id
                                                   WHERE ad.request_id = a.id AND ad.decision = 'approve' ORDER BY od.name) END AS approvers
       FROM page
       LEFT JOIN matched a ON a.distribution_id = page.distribution_id
       LEFT JOIN operators o ON o.id = a.requested_by
      ORDER BY page.version, coalesce(page.listener_id, ''), coalesce(page.target, '')`,
    [key.name, key.id, pos.version, pos.listenerId, pos.target, limit],
  );
}

/** How many rows the key report has (for the CSV and PDF limits). */
export async function keyReportCount(m: Queryable, keyId: string): Promise<number> {
  const [r] = await m.query(
    `SELECT (SELECT count(*) FROM distributions d JOIN key_versions v ON v.id = d.key_version_id WHERE v.key_id = $1)
          + (SELECT count(*) FROM key_versions v WHERE v.key_id = $1 AND NOT EXISTS (SELECT 1 FROM distributions d WHERE d.key_version_id = v.id)) AS n`,
    [keyId],
  );
  return Number(r.n);
}

export interface ReportSiteDbRow {
  id: string;
  state: string;
  hostname: string | null;
  approved_at: Date | null;
  approved_by: string | null;
  last_seen_at: Date | null;
  inventory_completed_at: Date | null;
  inventory_taken_at: Date | null;
  inventory_items: number | null;
}

export async function reportSite(m: Queryable, listenerId: string): Promise<ReportSiteDbRow | undefined> {
  const rows: ReportSiteDbRow[] = await m.query(
    `SELECT l.id, l.state, l.hostname, l.approved_at, l.approved_by, l.last_seen_at,
            i.completed_at AS inventory_completed_at, i.taken_at AS inventory_taken_at, i.items AS inventory_items
       FROM listeners l LEFT JOIN listener_inventories i ON i.listener_id = l.id
      WHERE l.id = $1`,
    [listenerId],
  );
  return rows[0];
}

export interface SiteRowPosition {
  key: string;
  version: number;
  target: string;
}

export interface SiteReportDbRow {
  key_name: string;
  version: number;
  version_state: string;
  target: string;
  hub_kcv: string;
  target_kcv: string | null;
  pushed_at: Date | null;
  confirmed_at: Date | null;
  created_by: string;
}

/**
 * What the site holds: distributions confirmed there whose version is not destroyed, by key name, version, target.
 * A confirmed row always has confirmed_at (set with the state); saying so lets the site's rows come from
 * distributions_settled_idx instead of a scan of every distribution.
 */
const HELD = `FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
      WHERE d.listener_id = $1 AND d.confirmed_at IS NOT NULL AND d.state = 'confirmed' AND v.state <> 'destroyed'`;

export async function siteReportPage(m: Queryable, listenerId: string, after: SiteRowPosition | undefined, limit: number): Promise<SiteReportDbRow[]> {
  const pos = after ?? { key: '', version: 0, target: '' };
  return m.query(
    `SELECT k.name AS key_name, v.version, v.state AS version_state, d.target, v.kcv AS hub_kcv, d.target_kcv, d.confirmed_at, d.created_by,
            (SELECT min(p.issued_at) FROM packages p WHERE p.distribution_id = d.id) AS pushed_at
       ${HELD} AND (k.name, v.version, d.target) > ($2::text, $3::int, $4::text)
      ORDER BY k.name, v.version, d.target
      LIMIT $5`,
    [listenerId, pos.key, pos.version, pos.target, limit],
  );
}

export async function siteReportCount(m: Queryable, listenerId: string): Promise<number> {
  const [r] = await m.query(`SELECT count(*) AS n ${HELD}`, [listenerId]);
  return Number(r.n);
}

export interface LedgerSpan {
  count: number;
  first_seq: number | null;
  last_seq: number | null;
}

/** The events of a period: how many, and their first and last sequence numbers. */
export async function ledgerSpan(m: Queryable, from: Date, to: Date): Promise<LedgerSpan> {
  const [r] = await m.query('SELECT count(*) AS count, min(seq) AS first_seq, max(seq) AS last_seq FROM audit_events WHERE at >= $1 AND at <= $2', [from, to]);
  return { count: Number(r.count), first_seq: r.first_seq === null ? null : Number(r.first_seq), last_seq: r.last_seq === null ? null : Number(r.last_seq) };
}

export interface LedgerDbRow {
  seq: string;
  at: Date;
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
  checkpoint_seq: string | null;
}

/** A page of the period's events in chain order, each with the first checkpoint at or after it (the signature covering it). */
export async function ledgerPage(m: Queryable, from: Date, to: Date, after: number, limit: number): Promise<LedgerDbRow[]> {
  return m.query(
    `SELECT e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash, e.hash,
            (SELECT min(c.seq) FROM audit_checkpoints c WHERE c.seq >= e.seq) AS checkpoint_seq
       FROM audit_events e
      WHERE e.seq > $3 AND e.at >= $1 AND e.at <= $2
      ORDER BY e.seq
      LIMIT $4`,
    [from, to, after, limit],
  );
}

export interface LedgerCheckpointDbRow {
  seq: string;
  hash: string;
  at: Date | null;
  signature: string;
  prev_seq: string | null;
  prev_digest: string | null;
}

/** The checkpoints that cover events first..last: the last one before (the anchor), those between, and the first at or after `last` (the seal). */
export async function coveringCheckpoints(m: Queryable, first: number, last: number): Promise<LedgerCheckpointDbRow[]> {
  return m.query(
    `SELECT seq, hash, at, signature, prev_seq, prev_digest FROM audit_checkpoints
      WHERE seq >= coalesce((SELECT max(seq) FROM audit_checkpoints WHERE seq < $1), 0)
        AND seq <= coalesce((SELECT min(seq) FROM audit_checkpoints WHERE seq >= $2), $2)
      ORDER BY seq`,
    [first, last],
  );
}
