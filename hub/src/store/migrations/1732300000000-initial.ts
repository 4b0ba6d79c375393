import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Initial1732300000000 implements MigrationInterface {
  name = 'Initial1732300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE hub_identity (
      id int PRIMARY KEY CHECK (id = 1),
      signing_key bytea NOT NULL,
      fingerprint text NOT NULL,
      created_at timestamptz NOT NULL)`);
    await q.query(`CREATE TABLE keys (
      id uuid PRIMARY KEY,
      name text NOT NULL UNIQUE,
      algorithm text NOT NULL,
      usages text[] NOT NULL,
      exportable boolean NOT NULL,
      state text NOT NULL,
      current_version int NOT NULL,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE key_versions (
      id uuid PRIMARY KEY,
      key_id uuid NOT NULL REFERENCES keys(id),
      version int NOT NULL,
      wrapped bytea NOT NULL,
      length int NOT NULL,
      kcv text NOT NULL,
      state text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (key_id, version))`);
    await q.query(`CREATE TABLE listeners (
      id text PRIMARY KEY,
      state text NOT NULL,
      identity_key bytea NOT NULL,
      transport_key bytea NOT NULL,
      oaep_hash text NOT NULL,
      fingerprint text NOT NULL,
      targets jsonb NOT NULL,
      hostname text,
      last_sequence bigint NOT NULL DEFAULT 0,
      requested_at timestamptz NOT NULL,
      approved_at timestamptz,
      approved_by text,
      activated_at timestamptz,
      last_seen_at timestamptz)`);
    await q.query(`CREATE TABLE keks (
      id uuid PRIMARY KEY,
      listener_id text NOT NULL REFERENCES listeners(id),
      version int NOT NULL,
      wrapped bytea NOT NULL,
      kcv text NOT NULL,
      state text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      activated_at timestamptz,
      UNIQUE (listener_id, version))`);
    await q.query(`CREATE TABLE distributions (
      id uuid PRIMARY KEY,
      key_version_id uuid NOT NULL REFERENCES key_versions(id),
      listener_id text NOT NULL REFERENCES listeners(id),
      target text NOT NULL,
      state text NOT NULL,
      attempts int NOT NULL DEFAULT 0,
      last_package_id uuid,
      last_sent_at timestamptz,
      target_kcv text,
      error_code text,
      error_detail text,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      confirmed_at timestamptz,
      UNIQUE (key_version_id, listener_id, target))`);
    await q.query(`CREATE INDEX distributions_state_idx ON distributions (state)`);
    await q.query(`CREATE INDEX distributions_listener_idx ON distributions (listener_id)`);
    await q.query(`CREATE TABLE packages (
      id uuid PRIMARY KEY,
      distribution_id uuid NOT NULL REFERENCES distributions(id),
      listener_id text NOT NULL,
      sequence bigint NOT NULL,
      issued_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      UNIQUE (listener_id, sequence))`);
    await q.query(`CREATE INDEX packages_distribution_idx ON packages (distribution_id)`);
    await q.query(`CREATE TABLE outbox (
      id bigserial PRIMARY KEY,
      subject text NOT NULL,
      msg_id text NOT NULL,
      payload bytea NOT NULL,
      distribution_id uuid,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE audit_events (
      seq bigint PRIMARY KEY,
      at timestamptz NOT NULL,
      actor text NOT NULL,
      action text NOT NULL,
      subject text NOT NULL,
      details jsonb NOT NULL,
      prev_hash text NOT NULL,
      hash text NOT NULL)`);
    await q.query(`CREATE TABLE audit_checkpoints (
      seq bigint PRIMARY KEY,
      hash text NOT NULL,
      at timestamptz NOT NULL,
      signature text NOT NULL)`);
    // Audit rows may be inserted, never changed: enforced in the database so that
    // no code path (ours or an ad-hoc session of the application role) can do it.
    await q.query(`CREATE FUNCTION keyhub_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'keyhub audit tables are append-only (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
      END $$`);
    for (const table of ['audit_events', 'audit_checkpoints']) {
      await q.query(`CREATE TRIGGER ${table}_no_update BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION keyhub_audit_append_only()`);
      await q.query(`CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION keyhub_audit_append_only()`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['audit_checkpoints', 'audit_events', 'outbox', 'packages', 'distributions', 'keks', 'listeners', 'key_versions', 'keys', 'hub_identity']) {
      await q.query(`DROP TABLE IF EXISTS ${t}`);
    }
    await q.query(`DROP FUNCTION IF EXISTS keyhub_audit_append_only()`);
  }
}
