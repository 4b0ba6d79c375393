import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Key pairs (RSA, EC): a key version row holds the private key in `wrapped`
 * (PKCS#8 under the private key store, `keyhub-hmk-private`) and its public
 * key beside it, DER SubjectPublicKeyInfo, bound by the row MAC
 * (crypto/row-mac.ts). NULL for secret keys, which all rows before this were.
 * No new table: the service role's grants on key_versions cover the column.
 */
export class KeyPairPublicKeys1733610000000 implements MigrationInterface {
  name = 'KeyPairPublicKeys1733610000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE key_versions ADD COLUMN public_key bytea');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE key_versions DROP COLUMN public_key');
  }
}
