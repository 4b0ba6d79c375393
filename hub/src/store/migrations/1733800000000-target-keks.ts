import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Per-target KEKs (issue 12): a PKCS#11 target other than the site's own
 * token has a KEK of its own, installed in that token. A row is born when
 * the site asks for one (`requested`: the transport key made in the target
 * token, signed by the site's identity key), is given its KEK when an
 * operator approves with the transport key's fingerprint
 * (`pending_confirmation`: blob under the KEK store, row MAC), and becomes
 * `active` only when the site reports the matching KCV from the target
 * token. A newer request for the same target supersedes a requested one.
 * Kept apart from `keks` so every query of root KEKs stays as it is.
 * The service role's grants come from the catalogue after every migration run.
 */
export class TargetKeks1733800000000 implements MigrationInterface {
  name = 'TargetKeks1733800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE target_keks (
      id uuid PRIMARY KEY,
      listener_id text NOT NULL REFERENCES listeners(id),
      target text NOT NULL,
      version int NOT NULL CHECK (version >= 1),
      state text NOT NULL CHECK (state IN ('requested', 'pending_confirmation', 'active', 'failed', 'superseded', 'revoked')),
      transport_key bytea NOT NULL,
      oaep_hash text NOT NULL,
      fingerprint text NOT NULL,
      request_id uuid NOT NULL,
      wrapped bytea,
      kcv text,
      mac bytea,
      requested_at timestamptz NOT NULL DEFAULT now(),
      approved_by text,
      approved_at timestamptz,
      activated_at timestamptz,
      UNIQUE (listener_id, target, version))`);
    // One KEK per target in use at a time.
    await q.query(`CREATE UNIQUE INDEX target_keks_one_active ON target_keks (listener_id, target) WHERE state = 'active'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS target_keks');
  }
}
