import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes for the compliance reports, measured on 1,000 sites, 100,000 key
 * versions, ~330,000 distributions and as many packages (bench stage
 * "dashboard"):
 *
 * - packages by distribution, with the issue time: a report row's "pushed
 *   at" is the first package of its distribution. Without an index each row
 *   scanned every package (27-53 ms a row: a key report page of 1,000 rows
 *   took 53 s, a site report page 5.4 s). This is one more index entry per
 *   package on the fan-out path (lean-write-indexes dropped the plain one
 *   when no query used it); the reports do, and packages are kept for good.
 * - confirmed distributions by site: what a site holds (site report, its
 *   count) read without scanning every distribution. Partial on
 *   `confirmed_at IS NOT NULL`, the complement of distributions_unconfirmed_idx:
 *   rows enter it only when confirmed (an update that already touches the
 *   indexes, as confirmed_at is in that index's predicate), never on insert,
 *   and no column of the `sent` update is named, so those stay HOT
 *   (hot-sent-updates).
 */
export class ReportIndexes1733950000000 implements MigrationInterface {
  name = 'ReportIndexes1733950000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX packages_distribution_issued_idx ON packages (distribution_id, issued_at)');
    await q.query('CREATE INDEX distributions_settled_idx ON distributions (listener_id) WHERE confirmed_at IS NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS distributions_settled_idx');
    await q.query('DROP INDEX IF EXISTS packages_distribution_issued_idx');
  }
}
