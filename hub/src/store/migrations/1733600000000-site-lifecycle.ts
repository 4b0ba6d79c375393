import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Site lifecycle (operations/listeners/: rotate-root-kek, rekey-compromised-
 * listener, decommission-listener).
 * - site_lifecycle_events: one row per compromise or decommission of a site:
 *   who, why, until when the site may confirm its destroys, which destroy
 *   commands were sent, when it ended, and which stream clean-up is still
 *   due (the scheduler's SiteStreamJob purges the site's DOWN messages and,
 *   once decommissioned, deletes its consumers).
 * - site_key_records: what the site held (or was sent) at that moment, per
 *   key version and target, and whether another site held it too: the
 *   re-keying list, kept after the distributions move on.
 * The states added to listeners (rekey_required, decommissioning,
 * decommissioned) and keks (compromised) are plain text values: no DDL.
 */
export class SiteLifecycle1733600000000 implements MigrationInterface {
  name = 'SiteLifecycle1733600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE site_lifecycle_events (
      id uuid PRIMARY KEY,
      listener_id text NOT NULL REFERENCES listeners(id),
      kind text NOT NULL CHECK (kind IN ('kek_compromised', 'decommission')),
      reason text,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      deadline timestamptz,
      command_ids uuid[] NOT NULL DEFAULT '{}',
      finished_at timestamptz,
      stream_cleanup text CHECK (stream_cleanup IN ('packages', 'all')))`);
    await q.query('CREATE INDEX site_lifecycle_events_listener_idx ON site_lifecycle_events (listener_id)');
    await q.query('CREATE INDEX site_lifecycle_events_due_idx ON site_lifecycle_events (created_at) WHERE finished_at IS NULL OR stream_cleanup IS NOT NULL');
    await q.query(`CREATE TABLE site_key_records (
      event_id uuid NOT NULL REFERENCES site_lifecycle_events(id),
      key_version_id uuid NOT NULL REFERENCES key_versions(id),
      target text NOT NULL,
      state text NOT NULL,
      held_elsewhere boolean NOT NULL,
      PRIMARY KEY (event_id, key_version_id, target))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE site_key_records');
    await q.query('DROP TABLE site_lifecycle_events');
  }
}
