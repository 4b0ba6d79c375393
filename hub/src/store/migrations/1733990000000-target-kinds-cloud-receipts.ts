import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 12, two hub-side records that were missing:
 * - `target_keks.kind`: the kind of target a site's KEK request names
 *   (pkcs11, or a keystore, cloud or TR-31 target served under a transit KEK);
 *   a target the hub did not know joins the site as that kind when the
 *   request is approved. Null on rotated versions and on rows from before.
 * - `distributions.cloud`: what a cloud receipt says of the import (the
 *   cloud's key and version ids, its import state, the wrapping used), kept
 *   with the distribution it confirmed and shown by `keyhub status` and the
 *   key report. Null for every other kind of target.
 */
export class TargetKindsCloudReceipts1733990000000 implements MigrationInterface {
  name = 'TargetKindsCloudReceipts1733990000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE target_keks ADD COLUMN kind text CHECK (kind IS NULL OR kind IN ('pkcs11', 'keystore', 'aws-kms', 'azure-kv', 'gcp-kms', 'tr31'))`);
    await q.query('ALTER TABLE distributions ADD COLUMN cloud jsonb');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE distributions DROP COLUMN cloud');
    await q.query('ALTER TABLE target_keks DROP COLUMN kind');
  }
}
