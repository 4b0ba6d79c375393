import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Operators reach the hub only through its API, with an identity:
 * - `operators`: people (or automation) with roles; revocation is a state,
 *   never a delete, so the audit trail's names keep pointing somewhere.
 * - `api_tokens`: bearer tokens, stored only as SHA-256 of their secret half,
 *   each optionally scoped down to a subset of its operator's roles.
 * - `approval_policies`, `approval_requests`, `approval_decisions`: dual
 *   control. A request keeps the exact RFC 8785 bytes that approvers saw, and
 *   every decision repeats the hash it was given, so nothing can be approved
 *   by reference to something that changed underneath.
 * - `ca_certificates`: every certificate the hub CA issued (its own included),
 *   with revocation, so that mTLS and later keystore chains can be checked
 *   against what the hub really issued.
 * - `keys.sensitive`: keys whose distribution falls under dual control.
 */
export class OperatorsAndApprovals1732800000000 implements MigrationInterface {
  name = 'OperatorsAndApprovals1732800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE operators (
      id uuid PRIMARY KEY,
      name text NOT NULL UNIQUE,
      roles text[] NOT NULL,
      state text NOT NULL CHECK (state IN ('active', 'revoked')),
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL,
      revoked_at timestamptz,
      revoked_by text)`);
    await q.query(`CREATE TABLE api_tokens (
      id text PRIMARY KEY,
      operator_id uuid NOT NULL REFERENCES operators (id),
      secret_hash bytea,
      roles text[],
      description text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL,
      expires_at timestamptz NOT NULL,
      last_used_at timestamptz,
      revoked_at timestamptz,
      revoked_by text)`);
    await q.query('CREATE INDEX api_tokens_operator_idx ON api_tokens (operator_id)');
    await q.query(`CREATE TABLE approval_policies (
      action text PRIMARY KEY,
      required integer NOT NULL CHECK (required BETWEEN 1 AND 16),
      enabled boolean NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      updated_by text NOT NULL)`);
    await q.query(`CREATE TABLE approval_requests (
      id uuid PRIMARY KEY,
      action text NOT NULL,
      canonical bytea NOT NULL,
      hash text NOT NULL,
      required integer NOT NULL,
      requested_by uuid NOT NULL REFERENCES operators (id),
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      state text NOT NULL CHECK (state IN ('pending', 'executed', 'rejected', 'failed', 'expired', 'cancelled')),
      decided_at timestamptz,
      result jsonb,
      error_code text)`);
    await q.query(`CREATE INDEX approval_requests_pending_idx ON approval_requests (created_at) WHERE state = 'pending'`);
    await q.query(`CREATE TABLE approval_decisions (
      request_id uuid NOT NULL REFERENCES approval_requests (id),
      operator_id uuid NOT NULL REFERENCES operators (id),
      decision text NOT NULL CHECK (decision IN ('approve', 'reject')),
      request_hash text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (request_id, operator_id))`);
    await q.query(`CREATE TABLE ca_certificates (
      serial text PRIMARY KEY,
      profile text NOT NULL,
      subject text NOT NULL,
      issuer_serial text,
      operator_id uuid REFERENCES operators (id),
      not_before timestamptz NOT NULL,
      not_after timestamptz NOT NULL,
      der bytea NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL,
      revoked_at timestamptz,
      revoked_by text,
      revocation_reason text)`);
    await q.query('CREATE INDEX ca_certificates_profile_idx ON ca_certificates (profile, not_after)');
    await q.query('ALTER TABLE keys ADD COLUMN sensitive boolean NOT NULL DEFAULT false');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE keys DROP COLUMN IF EXISTS sensitive');
    for (const t of ['ca_certificates', 'approval_decisions', 'approval_requests', 'approval_policies', 'api_tokens', 'operators']) {
      await q.query(`DROP TABLE IF EXISTS ${t}`);
    }
  }
}
