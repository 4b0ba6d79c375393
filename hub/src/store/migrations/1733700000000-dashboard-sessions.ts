import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Browser sessions of the dashboard. A session id is 256 random bits held
 * only by the browser (an HttpOnly cookie); the row keeps its SHA-256, so a
 * read of this table cannot be replayed as a cookie. A session rests on the
 * API token it was opened with: revoking the token or its operator ends it
 * (checked on every request by a join, so no job has to sweep first).
 * The service role's grants come from the catalogue after every migration
 * run (store/queries/audit-grants.ts): SELECT, INSERT, UPDATE, DELETE.
 */
export class DashboardSessions1733700000000 implements MigrationInterface {
  name = 'DashboardSessions1733700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE dashboard_sessions (
      id_hash bytea PRIMARY KEY CHECK (length(id_hash) = 32),
      operator_id uuid NOT NULL REFERENCES operators (id),
      token_id text NOT NULL REFERENCES api_tokens (id),
      created_at timestamptz NOT NULL DEFAULT now(),
      last_seen_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL)`);
    await q.query('CREATE INDEX dashboard_sessions_token_idx ON dashboard_sessions (token_id)');
    await q.query('CREATE INDEX dashboard_sessions_expiry_idx ON dashboard_sessions (expires_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS dashboard_sessions');
  }
}
