import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Declarative distribution and drift.
 * - listeners.labels: operator-set labels (jsonb object), GIN-indexed so a
 *   selector is one `labels @> $1` containment test.
 * - placements: "key K must be at these sites and targets", sites by id
 *   and/or label selector. Under dual control a placement records what was
 *   approved (version, sites) and whether it covers later versions/sites.
 * - placement_sites: what each placement has put where (the applied set),
 *   so that a site that drops out of a policy gets exactly its destroys.
 * - inventory_parts / inventory_items / listener_inventories: signed
 *   inventories as they arrive in parts; a report becomes a listener's
 *   current inventory only when all its parts are in.
 * - drift_findings: open findings, one row per (site, object, kind); the
 *   first sighting is audited, later scans only move last_seen_at.
 */
export class DistributionPolicies1733500000000 implements MigrationInterface {
  name = 'DistributionPolicies1733500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE listeners ADD COLUMN labels jsonb NOT NULL DEFAULT '{}'::jsonb`);
    await q.query('CREATE INDEX listeners_labels_idx ON listeners USING gin (labels jsonb_path_ops)');
    await q.query(`CREATE TABLE placements (
      id uuid PRIMARY KEY,
      name text NOT NULL UNIQUE,
      key_id uuid NOT NULL REFERENCES keys(id),
      listener_ids text[] NOT NULL DEFAULT '{}',
      selector jsonb,
      targets text[] NOT NULL DEFAULT '{}',
      future_versions boolean NOT NULL,
      future_sites boolean NOT NULL,
      destroy_extras boolean NOT NULL,
      version int NOT NULL,
      approved_sites text[],
      pending_request_id uuid,
      last_widening_sha text,
      created_by text NOT NULL,
      created_by_operator uuid NOT NULL REFERENCES operators(id),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await q.query('CREATE INDEX placements_key_idx ON placements (key_id)');
    await q.query(`CREATE TABLE placement_sites (
      placement_id uuid NOT NULL REFERENCES placements(id) ON DELETE CASCADE,
      listener_id text NOT NULL REFERENCES listeners(id),
      target text NOT NULL,
      key_version_id uuid NOT NULL REFERENCES key_versions(id),
      placed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (placement_id, listener_id, target, key_version_id))`);
    await q.query(`CREATE TABLE inventory_parts (
      listener_id text NOT NULL REFERENCES listeners(id),
      report_id uuid NOT NULL,
      part int NOT NULL,
      of int NOT NULL,
      taken_at timestamptz NOT NULL,
      targets text[] NOT NULL,
      received_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (listener_id, report_id, part))`);
    await q.query(`CREATE TABLE inventory_items (
      listener_id text NOT NULL,
      report_id uuid NOT NULL,
      target text NOT NULL,
      object_id text NOT NULL,
      key_id uuid,
      version int,
      label text NOT NULL,
      kcv text,
      state text NOT NULL)`);
    await q.query('CREATE INDEX inventory_items_report_idx ON inventory_items (report_id)');
    await q.query(`CREATE TABLE listener_inventories (
      listener_id text PRIMARY KEY REFERENCES listeners(id),
      report_id uuid NOT NULL,
      taken_at timestamptz NOT NULL,
      targets text[] NOT NULL,
      items int NOT NULL,
      completed_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE drift_findings (
      listener_id text NOT NULL REFERENCES listeners(id),
      target text NOT NULL,
      item text NOT NULL,
      kind text NOT NULL CHECK (kind IN ('missing', 'extra', 'kcv_mismatch', 'state_mismatch')),
      key_id uuid,
      version int,
      key_version_id uuid,
      distribution_id uuid,
      object_id text,
      label text,
      expected_kcv text,
      reported_kcv text,
      expected_state text,
      reported_state text,
      first_seen_at timestamptz NOT NULL DEFAULT now(),
      last_seen_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (listener_id, target, item, kind))`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['drift_findings', 'listener_inventories', 'inventory_items', 'inventory_parts', 'placement_sites', 'placements']) await q.query(`DROP TABLE IF EXISTS ${t}`);
    await q.query('DROP INDEX IF EXISTS listeners_labels_idx');
    await q.query('ALTER TABLE listeners DROP COLUMN labels');
  }
}
