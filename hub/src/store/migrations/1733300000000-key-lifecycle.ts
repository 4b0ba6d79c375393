import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * NIST SP 800-57 key version states and their schedule (domain/key-lifecycle.ts).
 * - keys: cryptoperiod (a new version's deactivation = activation + it),
 *   rotation interval (automatic rotation by policy) and the grace period an
 *   old version stays active at the sites after a rotation.
 * - key_versions: when the version becomes (became) active and deactivated,
 *   when and why its state last changed, and when it was compromised or
 *   destroyed (kept after destruction: the record of a compromise survives).
 *   The scheduler finds due versions through the two partial indexes.
 * - A destroyed version keeps no material: the database refuses a destroyed
 *   row whose wrapped blob is not empty, so the hub cannot resurrect it.
 */
export class KeyLifecycle1733300000000 implements MigrationInterface {
  name = 'KeyLifecycle1733300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE keys ADD COLUMN cryptoperiod_seconds integer CHECK (cryptoperiod_seconds > 0)');
    await q.query('ALTER TABLE keys ADD COLUMN rotate_every_seconds integer CHECK (rotate_every_seconds > 0)');
    await q.query('ALTER TABLE keys ADD COLUMN grace_seconds integer NOT NULL DEFAULT 86400 CHECK (grace_seconds >= 0)');
    await q.query('ALTER TABLE key_versions ADD COLUMN activate_at timestamptz');
    await q.query('UPDATE key_versions SET activate_at = created_at');
    await q.query('ALTER TABLE key_versions ALTER COLUMN activate_at SET NOT NULL');
    await q.query('ALTER TABLE key_versions ALTER COLUMN activate_at SET DEFAULT now()');
    await q.query('ALTER TABLE key_versions ADD COLUMN deactivate_at timestamptz');
    await q.query('ALTER TABLE key_versions ADD COLUMN state_changed_at timestamptz');
    await q.query('ALTER TABLE key_versions ADD COLUMN state_reason text');
    await q.query('ALTER TABLE key_versions ADD COLUMN compromised_at timestamptz');
    await q.query('ALTER TABLE key_versions ADD COLUMN destroyed_at timestamptz');
    await q.query(`ALTER TABLE key_versions ADD CONSTRAINT key_versions_state_check
      CHECK (state IN ('pre-activation', 'active', 'suspended', 'deactivated', 'compromised', 'destroyed'))`);
    await q.query(`ALTER TABLE key_versions ADD CONSTRAINT key_versions_destroyed_no_material CHECK (state <> 'destroyed' OR length(wrapped) = 0)`);
    await q.query(`CREATE INDEX key_versions_activation_due_idx ON key_versions (activate_at) WHERE state = 'pre-activation'`);
    await q.query(`CREATE INDEX key_versions_deactivation_due_idx ON key_versions (deactivate_at) WHERE state IN ('active', 'suspended') AND deactivate_at IS NOT NULL`);
    await q.query('CREATE INDEX keys_rotation_idx ON keys (id) WHERE rotate_every_seconds IS NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS keys_rotation_idx');
    await q.query('DROP INDEX IF EXISTS key_versions_deactivation_due_idx');
    await q.query('DROP INDEX IF EXISTS key_versions_activation_due_idx');
    await q.query('ALTER TABLE key_versions DROP CONSTRAINT IF EXISTS key_versions_destroyed_no_material');
    await q.query('ALTER TABLE key_versions DROP CONSTRAINT IF EXISTS key_versions_state_check');
    for (const c of ['destroyed_at', 'compromised_at', 'state_reason', 'state_changed_at', 'deactivate_at', 'activate_at']) await q.query(`ALTER TABLE key_versions DROP COLUMN IF EXISTS ${c}`);
    for (const c of ['grace_seconds', 'rotate_every_seconds', 'cryptoperiod_seconds']) await q.query(`ALTER TABLE keys DROP COLUMN IF EXISTS ${c}`);
  }
}
