import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Row MACs (hub/src/crypto/row-mac.ts): `key_versions.mac` and `keks.mac`,
 * an HMAC-SHA256 computed in the hub HSM over what each row is, checked
 * before its blob is unwrapped. A migration has no HSM, so the rows that
 * exist now stay NULL here; `keyhub-server init` gives them their MACs once
 * (operations/keys/backfill-row-macs.ts) and then records in the token that
 * it did, so no row written to the database afterwards is ever MACed that
 * way. A row without a MAC is refused like a row with a wrong one.
 */
export class RowMacs1732900000000 implements MigrationInterface {
  name = 'RowMacs1732900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE key_versions ADD COLUMN mac bytea');
    await q.query('ALTER TABLE keks ADD COLUMN mac bytea');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE keks DROP COLUMN mac');
    await q.query('ALTER TABLE key_versions DROP COLUMN mac');
  }
}
