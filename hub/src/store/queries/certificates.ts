import type { Queryable } from './queryable';

export type { Queryable };

/** One row of `ca_certificates`: every certificate the hub CA issued, its own included. */
export interface CertificateRow {
  serial: string;
  profile: string;
  subject: string;
  issuerSerial: string | null;
  operatorId: string | null;
  notBefore: Date;
  notAfter: Date;
  der: Buffer;
  createdAt: Date;
  createdBy: string;
  revokedAt: Date | null;
  revokedBy: string | null;
  revocationReason: string | null;
}

export type NewCertificateRow = Omit<CertificateRow, 'createdAt' | 'revokedAt' | 'revokedBy' | 'revocationReason'>;

const COLUMNS = 'serial, profile, subject, issuer_serial, operator_id, not_before, not_after, der, created_at, created_by, revoked_at, revoked_by, revocation_reason';

function toRow(r: Record<string, unknown>): CertificateRow {
  return {
    serial: r.serial as string,
    profile: r.profile as string,
    subject: r.subject as string,
    issuerSerial: (r.issuer_serial as string | null) ?? null,
    operatorId: (r.operator_id as string | null) ?? null,
    notBefore: r.not_before as Date,
    notAfter: r.not_after as Date,
    der: r.der as Buffer,
    createdAt: r.created_at as Date,
    createdBy: r.created_by as string,
    revokedAt: (r.revoked_at as Date | null) ?? null,
    revokedBy: (r.revoked_by as string | null) ?? null,
    revocationReason: (r.revocation_reason as string | null) ?? null,
  };
}

export async function insertCertificate(q: Queryable, c: NewCertificateRow): Promise<void> {
  await q.query(
    `INSERT INTO ca_certificates (serial, profile, subject, issuer_serial, operator_id, not_before, not_after, der, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [c.serial, c.profile, c.subject, c.issuerSerial, c.operatorId, c.notBefore, c.notAfter, c.der, c.createdBy],
  );
}

export async function findCertificate(q: Queryable, serial: string): Promise<CertificateRow | undefined> {
  const rows: Array<Record<string, unknown>> = await q.query(`SELECT ${COLUMNS} FROM ca_certificates WHERE serial = $1`, [serial]);
  return rows.length ? toRow(rows[0]) : undefined;
}

/** Unrevoked, unexpired certificates of a profile, newest first: the candidates for a CA's current certificate. */
export async function findCurrentCertificates(q: Queryable, profile: string): Promise<CertificateRow[]> {
  const rows: Array<Record<string, unknown>> = await q.query(
    `SELECT ${COLUMNS} FROM ca_certificates
     WHERE profile = $1 AND revoked_at IS NULL AND not_after > now()
     ORDER BY not_before DESC, created_at DESC`,
    [profile],
  );
  return rows.map(toRow);
}

/** Revoked certificates of a profile: a CA key certified by one of them is not certified again. */
export async function findRevokedCertificates(q: Queryable, profile: string): Promise<CertificateRow[]> {
  const rows: Array<Record<string, unknown>> = await q.query(`SELECT ${COLUMNS} FROM ca_certificates WHERE profile = $1 AND revoked_at IS NOT NULL ORDER BY revoked_at`, [profile]);
  return rows.map(toRow);
}

/**
 * Marks a certificate revoked once: the first revocation's time, actor and
 * reason stay. Returns the row as it is afterwards, and whether this call
 * changed it; undefined when no such serial exists.
 */
export async function revokeCertificate(q: Queryable, serial: string, actor: string, reason: string): Promise<{ row: CertificateRow; changed: boolean } | undefined> {
  const result: unknown = await q.query(
    `UPDATE ca_certificates SET revoked_at = now(), revoked_by = $2, revocation_reason = $3
     WHERE serial = $1 AND revoked_at IS NULL
     RETURNING ${COLUMNS}`,
    [serial, actor, reason],
  );
  // TypeORM's postgres driver answers UPDATE ... RETURNING with [rows, rowCount].
  const rows = (Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result) as Array<Record<string, unknown>>;
  if (rows.length > 0) return { row: toRow(rows[0]), changed: true };
  const existing = await findCertificate(q, serial);
  return existing ? { row: existing, changed: false } : undefined;
}

export interface RevokedSerial {
  serial: string;
  revokedAt: Date;
  reason: string | null;
}

/**
 * What goes on a CA's CRL: revoked, unexpired certificates signed by its
 * current certificate or by an earlier certificate of the same CA (same
 * profile and subject, so the same key): RFC 5280 lets an entry go once the
 * certificate is past notAfter.
 */
export async function findRevokedByIssuer(q: Queryable, issuerSerial: string, profile: string, subject: string): Promise<RevokedSerial[]> {
  const rows: Array<Record<string, unknown>> = await q.query(
    `SELECT serial, revoked_at, revocation_reason FROM ca_certificates
     WHERE revoked_at IS NOT NULL AND not_after > now() AND serial <> $1
       AND (issuer_serial = $1 OR issuer_serial IN (SELECT serial FROM ca_certificates WHERE profile = $2 AND subject = $3))
     ORDER BY revoked_at, serial`,
    [issuerSerial, profile, subject],
  );
  return rows.map((r) => ({ serial: r.serial as string, revokedAt: r.revoked_at as Date, reason: (r.revocation_reason as string | null) ?? null }));
}

/** A client certificate's row with its operator's state, for the mTLS check. */
export async function findCertificateWithOperator(q: Queryable, serial: string): Promise<(CertificateRow & { operatorState: string | null }) | undefined> {
  const rows: Array<Record<string, unknown>> = await q.query(
    `SELECT ${COLUMNS.split(', ')
      .map((c) => `c.${c}`)
      .join(', ')}, o.state AS operator_state
     FROM ca_certificates c LEFT JOIN operators o ON o.id = c.operator_id
     WHERE c.serial = $1`,
    [serial],
  );
  return rows.length ? { ...toRow(rows[0]), operatorState: (rows[0].operator_state as string | null) ?? null } : undefined;
}

/** Arbitrary constant naming the advisory lock that keeps two hubs from creating CA certificates at once. */
const CA_BOOTSTRAP_LOCK = 0x6b68_0002;

/** Held until the caller's transaction ends. */
export async function lockCaBootstrap(q: Queryable): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock($1)', [CA_BOOTSTRAP_LOCK]);
}
