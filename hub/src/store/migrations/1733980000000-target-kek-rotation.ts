import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Target KEK rotation (issue 12): a target's next KEK is made by the hub and
 * sent wrapped under the target's current KEK, so a rotated version has no
 * transport key, fingerprint or request of its own: it names the KEK it
 * travelled under (`wrapped_under`) instead. New states:
 * - `retired`: a version a newer one replaced (confirmed); the hub never
 *   wraps under it again, the site still keeps it for packages in flight;
 * - `destroyed`: the site was told to destroy it by a later rotation it
 *   confirmed; the blob is wiped on the hub too;
 * - `refused`: a rotation whose KCV the site did not reproduce; never used,
 *   blob wiped.
 * Versions replaced before this migration (`superseded` after having been
 * active) are `retired`: the site still holds them.
 */
export class TargetKekRotation1733980000000 implements MigrationInterface {
  name = 'TargetKekRotation1733980000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE target_keks DROP CONSTRAINT target_keks_state_check');
    await q.query(
      `ALTER TABLE target_keks ADD CONSTRAINT target_keks_state_check
         CHECK (state IN ('requested', 'pending_confirmation', 'active', 'failed', 'superseded', 'revoked', 'retired', 'destroyed', 'refused'))`,
    );
    await q.query(
      `ALTER TABLE target_keks ALTER COLUMN transport_key DROP NOT NULL, ALTER COLUMN oaep_hash DROP NOT NULL, ALTER COLUMN fingerprint DROP NOT NULL, ALTER COLUMN request_id DROP NOT NULL`,
    );
    await q.query('ALTER TABLE target_keks ADD COLUMN wrapped_under uuid REFERENCES target_keks(id), ADD COLUMN reason text');
    // Every version came either from a site's signed request (approved by fingerprint) or by rotation under an earlier one.
    await q.query(
      `ALTER TABLE target_keks ADD CONSTRAINT target_keks_origin
         CHECK ((request_id IS NOT NULL AND transport_key IS NOT NULL AND oaep_hash IS NOT NULL AND fingerprint IS NOT NULL) OR wrapped_under IS NOT NULL)`,
    );
    await q.query(`UPDATE target_keks SET state = 'retired' WHERE state = 'superseded' AND activated_at IS NOT NULL`);
    // One rotation of a target at a time.
    await q.query(`CREATE UNIQUE INDEX target_keks_one_rotation ON target_keks (listener_id, target) WHERE state = 'pending_confirmation' AND wrapped_under IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS target_keks_one_rotation');
    await q.query(`DELETE FROM target_keks WHERE wrapped_under IS NOT NULL`);
    await q.query(`UPDATE target_keks SET state = 'superseded' WHERE state IN ('retired', 'destroyed', 'refused')`);
    await q.query('ALTER TABLE target_keks DROP CONSTRAINT target_keks_origin');
    await q.query('ALTER TABLE target_keks DROP COLUMN wrapped_under, DROP COLUMN reason');
    await q.query(`ALTER TABLE target_keks ALTER COLUMN transport_key SET NOT NULL, ALTER COLUMN oaep_hash SET NOT NULL, ALTER COLUMN fingerprint SET NOT NULL, ALTER COLUMN request_id SET NOT NULL`);
    await q.query('ALTER TABLE target_keks DROP CONSTRAINT target_keks_state_check');
    await q.query(`ALTER TABLE target_keks ADD CONSTRAINT target_keks_state_check CHECK (state IN ('requested', 'pending_confirmation', 'active', 'failed', 'superseded', 'revoked'))`);
  }
}
