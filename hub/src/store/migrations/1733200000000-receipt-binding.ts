import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Receipts bind to the exact package they answer, heartbeats to an order.
 * - packages.envelope_sha256: SHA-256 of the signed envelope as published
 *   (the outbox payload); a receipt is applied only when it names this hash.
 *   Packages already published before this migration have no outbox row left
 *   to hash, so theirs stays NULL: their receipts are refused and the re-send
 *   timer issues fresh, hashed packages (fail closed, then self-healing).
 * - listeners.heartbeat_seq: the highest heartbeat sequence accepted from
 *   each listener; a heartbeat must carry a greater one to count.
 */
export class ReceiptBinding1733200000000 implements MigrationInterface {
  name = 'ReceiptBinding1733200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE packages ADD COLUMN envelope_sha256 bytea');
    await q.query(`UPDATE packages p SET envelope_sha256 = sha256(o.payload) FROM outbox o WHERE o.msg_id = p.id::text`);
    await q.query('ALTER TABLE listeners ADD COLUMN heartbeat_seq bigint');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE listeners DROP COLUMN heartbeat_seq');
    await q.query('ALTER TABLE packages DROP COLUMN envelope_sha256');
  }
}
