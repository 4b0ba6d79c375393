import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every distribution and package row is written on the fan-out hot path, so
 * each index on them costs on every push. These three serve no query: state
 * and per-listener lookups of rows in flight go through the partial
 * in-flight index, everything else by primary key, by (key version,
 * listener, target) or by (listener, sequence).
 */
export class LeanWriteIndexes1732500000000 implements MigrationInterface {
  name = 'LeanWriteIndexes1732500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS distributions_state_idx');
    await q.query('DROP INDEX IF EXISTS distributions_listener_idx');
    await q.query('DROP INDEX IF EXISTS packages_distribution_idx');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX packages_distribution_idx ON packages (distribution_id)');
    await q.query('CREATE INDEX distributions_listener_idx ON distributions (listener_id)');
    await q.query('CREATE INDEX distributions_state_idx ON distributions (state)');
  }
}
