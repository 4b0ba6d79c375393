import type { Queryable } from './queryable';

/** A key version with what its row MAC binds, its state and its key's name: what certificates and CSRs start from. */
export interface CertifiableVersion {
  key: { id: string; name: string; algorithm: string; usages: string[]; exportable: boolean; sensitive: boolean; targetKinds: string[]; allowClearImport: boolean };
  version: { id: string; version: number; length: number; kcv: string; wrapped: Buffer; mac: Buffer | null; publicKey: Buffer | null; state: string };
}

export interface VersionCertificateRow {
  keyVersionId: string;
  source: 'hub-ca' | 'imported';
  leafSerial: string;
  /** DER, leaf first. */
  chain: Buffer[];
  createdAt: Date;
  createdBy: string;
}

/**
 * `certifiable-version`: one version of a key by name and number; `lock`
 * holds the version row until the transaction ends, so two calls for the
 * same version issue one certificate.
 */
export async function certifiableVersion(q: Queryable, name: string, version: number | null, lock: boolean): Promise<CertifiableVersion | 'no-key' | 'no-version'> {
  const rows: Array<Record<string, unknown>> = await q.query(
    `SELECT k.id AS key_id, k.name, k.algorithm, k.usages, k.exportable, k.sensitive, k.target_kinds, k.allow_clear_import, k.current_version,
            v.id, v.version, v.length, v.kcv, v.wrapped, v.mac, v.public_key, v.state
       FROM keys k JOIN key_versions v ON v.key_id = k.id AND v.version = COALESCE($2::int, k.current_version)
      WHERE k.name = $1
      ${lock ? 'FOR UPDATE OF v' : ''}`,
    [name, version],
  );
  if (rows.length === 0) {
    const keys: unknown[] = await q.query('SELECT 1 FROM keys WHERE name = $1', [name]);
    return keys.length === 0 ? 'no-key' : 'no-version';
  }
  const r = rows[0];
  return {
    key: {
      id: r.key_id as string,
      name: r.name as string,
      algorithm: r.algorithm as string,
      usages: r.usages as string[],
      exportable: r.exportable as boolean,
      sensitive: r.sensitive as boolean,
      targetKinds: r.target_kinds as string[],
      allowClearImport: r.allow_clear_import as boolean,
    },
    version: {
      id: r.id as string,
      version: r.version as number,
      length: r.length as number,
      kcv: r.kcv as string,
      wrapped: r.wrapped as Buffer,
      mac: (r.mac as Buffer | null) ?? null,
      publicKey: (r.public_key as Buffer | null) ?? null,
      state: r.state as string,
    },
  };
}

function toRow(r: Record<string, unknown>): VersionCertificateRow {
  return {
    keyVersionId: r.key_version_id as string,
    source: r.source as VersionCertificateRow['source'],
    leafSerial: r.leaf_serial as string,
    chain: r.chain as Buffer[],
    createdAt: r.created_at as Date,
    createdBy: r.created_by as string,
  };
}

export async function findVersionCertificate(q: Queryable, keyVersionId: string): Promise<VersionCertificateRow | undefined> {
  const rows: Array<Record<string, unknown>> = await q.query('SELECT key_version_id, source, leaf_serial, chain, created_at, created_by FROM key_version_certificates WHERE key_version_id = $1', [
    keyVersionId,
  ]);
  return rows.length ? toRow(rows[0]) : undefined;
}

/** `set-version-certificate`: the version's chain, replacing any earlier one (an import after a hub CA certificate, a renewal). */
export async function setVersionCertificate(q: Queryable, c: Omit<VersionCertificateRow, 'createdAt'>): Promise<VersionCertificateRow> {
  const rows: Array<Record<string, unknown>> = await q.query(
    `INSERT INTO key_version_certificates (key_version_id, source, leaf_serial, chain, created_by) VALUES ($1, $2, $3, $4::bytea[], $5)
     ON CONFLICT (key_version_id) DO UPDATE SET source = $2, leaf_serial = $3, chain = $4::bytea[], created_by = $5, created_at = now()
     RETURNING key_version_id, source, leaf_serial, chain, created_at, created_by`,
    [c.keyVersionId, c.source, c.leafSerial, c.chain, c.createdBy],
  );
  return toRow(rows[0]);
}

/**
 * `certificate-chains`: the chains of many versions in one statement, for a
 * chunk of packages; versions without one are absent from the map.
 */
export async function certificateChains(q: Queryable, keyVersionIds: string[]): Promise<Map<string, Buffer[]>> {
  if (keyVersionIds.length === 0) return new Map();
  const rows: Array<{ key_version_id: string; chain: Buffer[] }> = await q.query('SELECT key_version_id, chain FROM key_version_certificates WHERE key_version_id = ANY($1::uuid[])', [keyVersionIds]);
  return new Map(rows.map((r) => [r.key_version_id, r.chain]));
}
