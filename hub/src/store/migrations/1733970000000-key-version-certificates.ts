import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Certificate chains of key pair versions (issue 12, Java keystores): at
 * most one per version, leaf first, DER. `hub-ca`: issued by the hub's
 * key-issuing CA (the leaf's row is in `ca_certificates`, `leaf_serial`
 * points at it); `imported`: from an outside CA after a CSR. The database is
 * not trusted: the leaf's public key is compared with the version's, which
 * the row MAC binds, whenever a chain is used. The service role's grants
 * come from the catalogue after every migration run.
 */
export class KeyVersionCertificates1733970000000 implements MigrationInterface {
  name = 'KeyVersionCertificates1733970000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE key_version_certificates (
      key_version_id uuid PRIMARY KEY REFERENCES key_versions(id) ON DELETE CASCADE,
      source text NOT NULL CHECK (source IN ('hub-ca', 'imported')),
      leaf_serial text NOT NULL,
      chain bytea[] NOT NULL CHECK (cardinality(chain) BETWEEN 1 AND 5),
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS key_version_certificates');
  }
}
