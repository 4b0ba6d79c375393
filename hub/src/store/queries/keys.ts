import { In, type EntityManager } from 'typeorm';
import { KeyEntity, KeyVersionEntity } from '../entities';
import { insertRows } from './bulk';
import type { Queryable } from './queryable';

/** The first of `names` that is already taken, if any. */
export async function findTakenKeyName(m: Queryable, names: string[]): Promise<string | undefined> {
  const taken: Array<{ name: string }> = await m.query('SELECT name FROM keys WHERE name = ANY($1) LIMIT 1', [names]);
  return taken[0]?.name;
}

/** Rows of (id, name, algorithm, usages, exportable, sensitive, state, current_version, created_by). */
export async function insertKeys(m: EntityManager, rows: unknown[][]): Promise<void> {
  await insertRows(m, 'keys', ['id', 'name', 'algorithm', 'usages', 'exportable', 'sensitive', 'state', 'current_version', 'created_by', 'target_kinds', 'allow_clear_import'], rows);
}

/** Rows of (id, key_id, version, wrapped, length, kcv, state, mac, public_key). */
export async function insertKeyVersions(m: EntityManager, rows: unknown[][]): Promise<void> {
  await insertRows(m, 'key_versions', ['id', 'key_id', 'version', 'wrapped', 'length', 'kcv', 'state', 'mac', 'public_key'], rows);
}

/** Key versions without a row MAC, with what their MAC binds (the one-time backfill). */
export async function keyVersionsWithoutMac(m: Queryable): Promise<Array<{ key: KeyEntity; version: KeyVersionEntity }>> {
  const rows: Array<Record<string, unknown>> = await m.query(
    `SELECT v.id, v.version, v.wrapped, v.length, v.kcv, k.id AS key_id, k.algorithm, k.usages, k.exportable, k.sensitive, k.target_kinds, k.allow_clear_import
       FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE v.mac IS NULL ORDER BY v.id`,
  );
  return rows.map((r) => ({
    key: Object.assign(new KeyEntity(), {
      id: r.key_id,
      algorithm: r.algorithm,
      usages: r.usages,
      exportable: r.exportable,
      sensitive: r.sensitive,
      targetKinds: r.target_kinds,
      allowClearImport: r.allow_clear_import,
    }),
    version: Object.assign(new KeyVersionEntity(), { id: r.id, keyId: r.key_id, version: r.version, wrapped: r.wrapped, length: r.length, kcv: r.kcv }),
  }));
}

export async function setKeyVersionMac(m: Queryable, id: string, mac: Buffer): Promise<void> {
  await m.query('UPDATE key_versions SET mac = $2 WHERE id = $1 AND mac IS NULL', [id, mac]);
}

/** Every key with its current version's KCV, by name. */
export async function listKeysWithCurrentKcv(m: Queryable): Promise<Array<Record<string, unknown>>> {
  return m.query(
    `SELECT k.id, k.name, k.algorithm, k.state, k.current_version, v.kcv, k.usages, k.exportable, k.sensitive, k.target_kinds, k.allow_clear_import, k.created_by, k.created_at
         FROM keys k LEFT JOIN key_versions v ON v.key_id = k.id AND v.version = k.current_version
        ORDER BY k.name`,
  );
}

export async function keyNameExists(m: Queryable, name: string): Promise<boolean> {
  const [k] = await m.query('SELECT 1 FROM keys WHERE name = $1', [name]);
  return !!k;
}

/** One row per key version x listener x target (a version never distributed gets one row of NULLs). */
export async function keyStatusRows(m: Queryable, keyName: string | null): Promise<Array<Record<string, unknown>>> {
  return m.query(
    `SELECT k.name AS key, v.version, v.kcv, d.listener_id AS listener, d.target, d.state, d.attempts, d.target_kcv, d.error_code, d.updated_at, d.confirmed_at, d.cloud
         FROM keys k JOIN key_versions v ON v.key_id = k.id
         LEFT JOIN distributions d ON d.key_version_id = v.id
        WHERE ($1::text IS NULL OR k.name = $1)
        ORDER BY k.name, v.version, d.listener_id, d.target`,
    [keyName],
  );
}

/** Keys whose name starts with `prefix` (LIKE wildcards in it are taken literally), by name. */
export async function findKeysByPrefix(m: EntityManager, prefix: string): Promise<KeyEntity[]> {
  return m
    .createQueryBuilder(KeyEntity, 'k')
    .where('k.name LIKE :p', { p: `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%` })
    .orderBy('k.name')
    .getMany();
}

export async function findKeysByName(m: EntityManager, names: string[]): Promise<KeyEntity[]> {
  return m.find(KeyEntity, { where: { name: In(names) } });
}

/** The versions named by (key id, version) pairs, as raw rows (no hydration); pairs without such a version are left out. */
export async function findKeyVersions(m: Queryable, keyIds: string[], versions: number[]): Promise<KeyVersionEntity[]> {
  return m.query(
    `SELECT v.id, v.key_id AS "keyId", v.version, v.wrapped, v.length, v.kcv, v.state, v.mac, v.public_key AS "publicKey"
         FROM key_versions v JOIN (SELECT unnest($1::uuid[]) AS key_id, unnest($2::int[]) AS version) w
           ON v.key_id = w.key_id AND v.version = w.version`,
    [keyIds, versions],
  );
}

/** Key versions by id, and the keys they belong to, for re-issuing their packages. */
export async function loadVersionsAndKeys(m: EntityManager, versionIds: string[]): Promise<{ versions: Map<string, KeyVersionEntity>; keys: Map<string, KeyEntity> }> {
  const versions = new Map((await m.findByIds(KeyVersionEntity, versionIds)).map((v) => [v.id, v]));
  const keys = new Map((await m.findByIds(KeyEntity, [...new Set([...versions.values()].map((v) => v.keyId))])).map((k) => [k.id, k]));
  return { versions, keys };
}

/** A page of keys by name after `after`, optionally with a name prefix: the API pages through 100,000 keys this way. */
export async function keyPage(m: Queryable, prefix: string | null, after: string | null, limit: number): Promise<Array<Record<string, unknown>>> {
  return m.query(
    `SELECT k.id, k.name, k.algorithm, k.state, k.current_version, v.kcv, k.usages, k.exportable, k.sensitive, k.target_kinds, k.allow_clear_import, k.created_by, k.created_at
         FROM keys k LEFT JOIN key_versions v ON v.key_id = k.id AND v.version = k.current_version
        WHERE ($1::text IS NULL OR k.name LIKE $1 || '%') AND ($2::text IS NULL OR k.name > $2)
        ORDER BY k.name LIMIT $3`,
    [prefix === null ? null : prefix.replace(/[\\%_]/g, (c) => `\\${c}`), after, limit],
  );
}

/** `set-key-target-policy`: the kinds of target a key may reach and whether clear import is allowed (issue 12). */
export async function setKeyTargetPolicy(m: Queryable, keyId: string, targetKinds: string[], allowClearImport: boolean): Promise<void> {
  await m.query('UPDATE keys SET target_kinds = $2, allow_clear_import = $3 WHERE id = $1', [keyId, targetKinds, allowClearImport]);
}

/** `set-version-macs`: row MACs recomputed over a new key policy, in one statement. */
export async function setVersionMacs(m: Queryable, macs: Array<[string, Buffer]>): Promise<void> {
  if (macs.length === 0) return;
  await m.query('UPDATE key_versions v SET mac = u.mac FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::bytea[]) AS mac) u WHERE v.id = u.id', [macs.map((x) => x[0]), macs.map((x) => x[1])]);
}
