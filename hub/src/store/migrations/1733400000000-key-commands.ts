import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Lifecycle commands to sites (operations/commands/).
 * - key_commands: one row per (command, listener, target): what was asked
 *   (action, key version), the signed envelope as queued (re-sent verbatim
 *   until answered) and its SHA-256 (a command receipt is applied only when
 *   it names it), and the site's answer.
 * - outbox.priority: urgent rows (compromise, destroy) are claimed by the
 *   relay before any other; the partial index holds only them, so the normal
 *   path's inserts and claims do not change.
 */
export class KeyCommands1733400000000 implements MigrationInterface {
  name = 'KeyCommands1733400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE key_commands (
      id uuid PRIMARY KEY,
      key_version_id uuid NOT NULL REFERENCES key_versions(id),
      listener_id text NOT NULL REFERENCES listeners(id),
      target text NOT NULL,
      action text NOT NULL,
      urgent boolean NOT NULL,
      state text NOT NULL,
      attempts int NOT NULL DEFAULT 1,
      subject text NOT NULL,
      envelope bytea NOT NULL,
      envelope_sha256 bytea NOT NULL,
      outcome text,
      effect text,
      error_code text,
      error_detail text,
      reason text,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL,
      last_queued_at timestamptz NOT NULL,
      answered_at timestamptz)`);
    await q.query('CREATE INDEX key_commands_version_idx ON key_commands (key_version_id)');
    await q.query(`CREATE INDEX key_commands_open_idx ON key_commands (last_queued_at) WHERE state = 'pending'`);
    await q.query('ALTER TABLE outbox ADD COLUMN priority smallint NOT NULL DEFAULT 0');
    await q.query('CREATE INDEX outbox_urgent_idx ON outbox (id) WHERE priority > 0');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX outbox_urgent_idx');
    await q.query('ALTER TABLE outbox DROP COLUMN priority');
    await q.query('DROP TABLE key_commands');
  }
}
