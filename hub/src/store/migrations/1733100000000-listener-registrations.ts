import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * NATS identities. `listener_registrations`: an operator registered the id
 * (`keyhub listener register`) and handed the site a bootstrap credential;
 * only registered ids may enroll. The row keeps the bootstrap's public NKEY
 * and expiry (never its seed), and the listener's own NKEY once a verified
 * enrollment named it. `nats_revocations`: user NKEYs whose JWTs the account
 * refuses; the account JWT pushed to the NATS servers is built from it.
 */
export class ListenerRegistrations1733100000000 implements MigrationInterface {
  name = 'ListenerRegistrations1733100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE listener_registrations (
      listener_id text PRIMARY KEY,
      bootstrap_key text NOT NULL,
      nats_user_key text,
      state text NOT NULL CHECK (state IN ('open', 'closed')),
      registered_by text NOT NULL,
      registered_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL)`);
    await q.query(`CREATE TABLE nats_revocations (
      public_key text PRIMARY KEY,
      listener_id text,
      reason text NOT NULL,
      revoked_at timestamptz NOT NULL DEFAULT now(),
      not_after timestamptz)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE nats_revocations');
    await q.query('DROP TABLE listener_registrations');
  }
}
