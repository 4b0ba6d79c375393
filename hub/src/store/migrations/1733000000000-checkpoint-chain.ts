import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Checkpoints chain to each other: each names the previous checkpoint's
 * event (`prev_seq`) and the SHA-256 of its signed bytes (`prev_digest`),
 * and the hub signs that together with the new head. Rows from before this
 * migration keep NULLs (legacy, accepted only before the first chained one).
 * A checkpoint has at most one successor, so two hub replicas can never
 * store a fork. The `at` column now holds the signed time exactly (the
 * payload's millisecond ISO time round-trips through timestamptz).
 *
 * `audit_events.seal`: the HSM's HMAC over (seq, hash) of the last event of
 * each append (audit/audit-seal.ts), so the checkpoint job can tell a head
 * the hub wrote from one re-chained by someone with database rights only.
 *
 * Privileges are not granted here: the service role's name is
 * configuration, and `keyhub-server init`/`migrate` grant it after every
 * migration run (operations/audit/grant-service-role.ts), so that tables
 * added later are covered too.
 */
export class CheckpointChain1733000000000 implements MigrationInterface {
  name = 'CheckpointChain1733000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE audit_checkpoints ADD COLUMN prev_seq bigint, ADD COLUMN prev_digest text');
    await q.query('ALTER TABLE audit_events ADD COLUMN seal bytea');
    await q.query('ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_link_complete CHECK ((prev_seq IS NULL) = (prev_digest IS NULL))');
    await q.query('ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_link_backwards CHECK (prev_seq IS NULL OR prev_seq < seq)');
    await q.query('ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_one_successor UNIQUE (prev_digest)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE audit_checkpoints DROP CONSTRAINT IF EXISTS audit_checkpoints_one_successor');
    await q.query('ALTER TABLE audit_checkpoints DROP CONSTRAINT IF EXISTS audit_checkpoints_link_backwards');
    await q.query('ALTER TABLE audit_checkpoints DROP CONSTRAINT IF EXISTS audit_checkpoints_link_complete');
    await q.query('ALTER TABLE audit_checkpoints DROP COLUMN IF EXISTS prev_digest, DROP COLUMN IF EXISTS prev_seq');
    await q.query('ALTER TABLE audit_events DROP COLUMN IF EXISTS seal');
  }
}
