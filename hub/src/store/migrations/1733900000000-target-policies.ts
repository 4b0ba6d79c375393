import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Targets as configuration (issue 12):
 * - `keys.target_kinds`, `keys.allow_clear_import`: the kinds of target a
 *   key may reach (default `pkcs11` only: an HSM-only key) and whether a
 *   cloud JWK import (the key in clear inside TLS) is allowed. Both are bound
 *   by each version's row MAC when they differ from the default, so a row
 *   widened in the database fails its MAC before anything is unwrapped;
 *   rows with the default encode as before, so their MACs stay valid.
 * - `listeners.target_health`: the latest per-target health of the last
 *   heartbeat, written by the same statement that marks the listener seen.
 * - `target_updates`: a target a site adds or removes after enrollment, by
 *   signed update, held until an operator approves it.
 * The service role's grants come from the catalogue after every migration run.
 */
export class TargetPolicies1733900000000 implements MigrationInterface {
  name = 'TargetPolicies1733900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE keys ADD COLUMN target_kinds text[] NOT NULL DEFAULT '{pkcs11}'`);
    await q.query(`ALTER TABLE keys ADD COLUMN allow_clear_import boolean NOT NULL DEFAULT false`);
    await q.query(`ALTER TABLE listeners ADD COLUMN target_health jsonb`);
    await q.query(`CREATE TABLE target_updates (
      id uuid PRIMARY KEY,
      listener_id text NOT NULL REFERENCES listeners(id),
      request_id uuid NOT NULL UNIQUE,
      op text NOT NULL CHECK (op IN ('add', 'remove')),
      target text NOT NULL,
      kind text NOT NULL,
      settings jsonb NOT NULL,
      state text NOT NULL CHECK (state IN ('requested', 'approved', 'superseded')),
      requested_at timestamptz NOT NULL DEFAULT now(),
      approved_by text,
      approved_at timestamptz)`);
    // At most one update per target awaits approval; a newer one supersedes it.
    await q.query(`CREATE UNIQUE INDEX target_updates_one_requested ON target_updates (listener_id, target) WHERE state = 'requested'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS target_updates');
    await q.query('ALTER TABLE listeners DROP COLUMN IF EXISTS target_health');
    await q.query('ALTER TABLE keys DROP COLUMN IF EXISTS allow_clear_import');
    await q.query('ALTER TABLE keys DROP COLUMN IF EXISTS target_kinds');
  }
}
