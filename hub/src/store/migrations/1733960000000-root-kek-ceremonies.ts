import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Root KEKs set up by key components (issue 13): a ceremony names its
 * listener, root KEK, scheme (XOR components or Shamir shares) and one
 * custodian per part. No part is stored, not even wrapped: each is derived
 * in the HSM (HMAC under `keyhub-ceremony`) from the ceremony's random
 * `nonce` when its custodian fetches it, once (`released_at`). The nonce is
 * erased when the last part is released or the ceremony ends, after which
 * nothing can derive a part again. Rows carry a row MAC binding the
 * ceremony to its listener, KEK, nonce and custodians, and each part to its
 * custodian and KCV, so the database cannot hand a part to someone else.
 */
export class RootKekCeremonies1733960000000 implements MigrationInterface {
  name = 'RootKekCeremonies1733960000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE root_kek_ceremonies (
      id uuid PRIMARY KEY,
      listener_id text NOT NULL REFERENCES listeners(id),
      kek_id uuid NOT NULL,
      kek_version int NOT NULL CHECK (kek_version >= 1),
      scheme text NOT NULL CHECK (scheme IN ('xor', 'shamir')),
      parts int NOT NULL CHECK (parts BETWEEN 2 AND 5),
      threshold int NOT NULL CHECK (threshold >= 2 AND threshold <= parts),
      nonce bytea,
      mac bytea NOT NULL,
      requested_by text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz)`);
    await q.query(`CREATE INDEX root_kek_ceremonies_listener ON root_kek_ceremonies (listener_id, created_at DESC)`);
    await q.query(`CREATE TABLE root_kek_ceremony_parts (
      ceremony_id uuid NOT NULL REFERENCES root_kek_ceremonies(id),
      part int NOT NULL CHECK (part >= 1),
      custodian_id uuid NOT NULL REFERENCES operators(id),
      custodian_name text NOT NULL,
      kcv text NOT NULL,
      mac bytea NOT NULL,
      released_at timestamptz,
      PRIMARY KEY (ceremony_id, part),
      UNIQUE (ceremony_id, custodian_id))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS root_kek_ceremony_parts');
    await q.query('DROP TABLE IF EXISTS root_kek_ceremonies');
  }
}
