import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Distributions in flight (queued or sent) are a small, hot subset of a table
 * that only grows: a partial index serves the backlog counts and the re-send
 * scan without touching confirmed history. Audit events are looked up by
 * subject ("everything that happened to distribution X").
 */
export class QueryIndexes1732400000000 implements MigrationInterface {
  name = 'QueryIndexes1732400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX distributions_in_flight_idx ON distributions (listener_id, last_sent_at) WHERE state IN ('queued', 'sent')`);
    await q.query('CREATE INDEX audit_events_subject_idx ON audit_events (subject)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS audit_events_subject_idx');
    await q.query('DROP INDEX IF EXISTS distributions_in_flight_idx');
  }
}
