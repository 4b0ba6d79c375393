import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Per-listener sequence counters move out of the listeners table into a
 * narrow one. A call that pushes to 1,000 listeners rewrote 1,000 wide
 * listener rows (public keys, targets) to advance their counters, and held
 * them locked FOR UPDATE meanwhile: heartbeat flushes and receipt batches,
 * which update the same rows, and every distribution insert's foreign-key
 * check (FOR KEY SHARE on the listener) waited for it. Rows appear on first
 * use; a listener without one has handed out no sequence number yet.
 */
export class ListenerSequences1732600000000 implements MigrationInterface {
  name = 'ListenerSequences1732600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE listener_sequences (
      listener_id text PRIMARY KEY REFERENCES listeners(id),
      last_sequence bigint NOT NULL)`);
    await q.query('INSERT INTO listener_sequences (listener_id, last_sequence) SELECT id, last_sequence FROM listeners WHERE last_sequence > 0');
    await q.query('ALTER TABLE listeners DROP COLUMN last_sequence');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE listeners ADD COLUMN last_sequence bigint NOT NULL DEFAULT 0');
    await q.query('UPDATE listeners l SET last_sequence = s.last_sequence FROM listener_sequences s WHERE s.listener_id = l.id');
    await q.query('DROP TABLE listener_sequences');
  }
}
