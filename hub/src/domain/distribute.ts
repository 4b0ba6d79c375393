import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { In, type EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, type AuditInput } from '../audit/audit-log';
import { HubContext } from '../context';
import { DistributionEntity, KeyEntity, KeyVersionEntity, ListenerEntity } from '../store/entities';
import { insertRows } from '../store/sql';
import { issuePackages, type PackageRequest } from './package-issuer';

export interface Destination {
  listenerId: string;
  /** Omitted: every target of the listener. */
  target?: string;
}

export interface KeySelector {
  name: string;
  /** Omitted: the key's current version. */
  version?: number;
}

export interface DistributeInput {
  /** Named keys, or every key whose name starts with `prefix` (current versions). */
  keys: KeySelector[] | { prefix: string };
  /** 'all': every target of every active listener. */
  to: Destination[] | 'all';
  actor: string;
}

export interface DistributionRef {
  distributionId: string;
  key: string;
  version: number;
  listenerId: string;
  target: string;
}

export interface DistributeResult {
  keys: Array<{ name: string; version: number; kcv: string }>;
  queued: DistributionRef[];
  skipped: Array<DistributionRef & { state: string }>;
}

/**
 * One call for any fan-out (one key to every site, many keys to one site):
 * writes the distribution rows, their signed packages in the outbox and the
 * audit events in one transaction. Pushing a
 * key again where it is confirmed or in flight changes nothing; where it
 * failed, it is queued afresh.
 */
@injectable()
export class Distribute {
  constructor(private readonly ctx: HubContext) {}

  async execute(input: DistributeInput): Promise<DistributeResult> {
    const { ds, keyring, config } = this.ctx;
    return ds.transaction(async (m) => {
      const selected = await this.resolveKeys(m, input.keys);
      const pairs = await this.resolveDestinations(m.getRepository(ListenerEntity), input.to);
      const existing: DistributionEntity[] = await m.find(DistributionEntity, {
        where: { keyVersionId: In(selected.map((s) => s.version.id)), listenerId: In([...new Set(pairs.map((p) => p.listenerId))]) },
      });
      const byTriple = new Map(existing.map((d) => [`${d.keyVersionId}/${d.listenerId}/${d.target}`, d]));

      const now = new Date();
      const fresh: DistributionEntity[] = [];
      const requeued: DistributionEntity[] = [];
      const requests: PackageRequest[] = [];
      const result: DistributeResult = { keys: selected.map((s) => ({ name: s.key.name, version: s.version.version, kcv: s.version.kcv })), queued: [], skipped: [] };
      for (const { key, version } of selected) {
        for (const p of pairs) {
          const d = byTriple.get(`${version.id}/${p.listenerId}/${p.target}`);
          const ref = { key: key.name, version: version.version, listenerId: p.listenerId, target: p.target };
          if (!d) {
            const row = Object.assign(new DistributionEntity(), {
              id: randomUUID(), keyVersionId: version.id, listenerId: p.listenerId, target: p.target, state: 'queued', attempts: 1,
              lastPackageId: null, lastSentAt: null, targetKcv: null, errorCode: null, errorDetail: null, createdBy: input.actor,
              createdAt: now, updatedAt: now, confirmedAt: null,
            });
            fresh.push(row);
            requests.push({ distribution: row, key, version });
            result.queued.push({ distributionId: row.id, ...ref });
          } else if (d.state === 'failed') {
            requeued.push(d);
            requests.push({ distribution: d, key, version });
            result.queued.push({ distributionId: d.id, ...ref });
          } else {
            result.skipped.push({ distributionId: d.id, ...ref, state: d.state });
          }
        }
      }
      if (requests.length === 0) return result;

      await insertRows(m, 'distributions',
        ['id', 'key_version_id', 'listener_id', 'target', 'state', 'attempts', 'created_by', 'created_at', 'updated_at'],
        fresh.map((d) => [d.id, d.keyVersionId, d.listenerId, d.target, d.state, d.attempts, d.createdBy, d.createdAt, d.updatedAt]));
      if (requeued.length) {
        await m.query(`UPDATE distributions SET state = 'queued', attempts = 1, error_code = NULL, error_detail = NULL, updated_at = $2 WHERE id = ANY($1)`, [requeued.map((d) => d.id), now]);
      }
      const issued = await issuePackages(m, keyring, requests, config.delivery.packageTtlSeconds);
      await m.query(
        `UPDATE distributions d SET last_package_id = v.pkg::uuid FROM (SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS pkg) v WHERE d.id = v.id::uuid`,
        [issued.map((i) => i.distributionId), issued.map((i) => i.packageId)],
      );
      const requeuedIds = new Set(requeued.map((d) => d.id));
      const audit: AuditInput[] = result.queued.map((q) => ({
        actor: input.actor,
        action: 'distribution.queued',
        subject: `distribution:${q.distributionId}`,
        details: { key: q.key, version: q.version, listener: q.listenerId, target: q.target, requeued: requeuedIds.has(q.distributionId) },
      }));
      await appendAudit(m, audit);
      return result;
    });
  }

  private async resolveKeys(m: EntityManager, keys: DistributeInput['keys']): Promise<Array<{ key: KeyEntity; version: KeyVersionEntity }>> {
    let found: KeyEntity[];
    const wanted = new Map<string, number | undefined>();
    if ('prefix' in keys) {
      if (!keys.prefix) throw new KeyhubError('INPUT_INVALID', 'key prefix must not be empty');
      found = await m.createQueryBuilder(KeyEntity, 'k').where('k.name LIKE :p', { p: `${keys.prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%` }).orderBy('k.name').getMany();
      if (found.length === 0) throw new KeyhubError('KEY_NOT_FOUND', `no key name starts with "${keys.prefix}"`);
    } else {
      if (keys.length === 0) throw new KeyhubError('INPUT_INVALID', 'no key given');
      for (const k of keys) wanted.set(k.name, k.version);
      found = await m.find(KeyEntity, { where: { name: In([...wanted.keys()]) } });
      const missing = [...wanted.keys()].find((n) => !found.some((k) => k.name === n));
      if (missing) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${missing}"`);
    }
    const versionOf = (k: KeyEntity) => wanted.get(k.name) ?? k.currentVersion;
    const versions: KeyVersionEntity[] = await m.query(
      `SELECT v.id, v.key_id AS "keyId", v.version, v.wrapped, v.length, v.kcv, v.state
         FROM key_versions v JOIN (SELECT unnest($1::uuid[]) AS key_id, unnest($2::int[]) AS version) w
           ON v.key_id = w.key_id AND v.version = w.version`,
      [found.map((k) => k.id), found.map(versionOf)],
    );
    const byKey = new Map(versions.map((v) => [v.keyId, v]));
    return found.map((key) => {
      const version = byKey.get(key.id);
      if (!version) throw new KeyhubError('KEY_NOT_FOUND', `key "${key.name}" has no version ${versionOf(key)}`);
      if (version.state !== 'active') throw new KeyhubError('INPUT_INVALID', `version ${version.version} of "${key.name}" is ${version.state}`);
      return { key, version };
    });
  }

  private async resolveDestinations(
    listeners: { find: (o: object) => Promise<ListenerEntity[]> },
    to: Destination[] | 'all',
  ): Promise<Array<{ listenerId: string; target: string }>> {
    if (to === 'all') {
      const active = await listeners.find({ where: { state: 'active' }, order: { id: 'ASC' } });
      if (active.length === 0) throw new KeyhubError('LISTENER_NOT_FOUND', 'no active listeners');
      return active.flatMap((l) => l.targets.map((t) => ({ listenerId: l.id, target: t.name })));
    }
    if (to.length === 0) throw new KeyhubError('INPUT_INVALID', 'no destination given');
    const ids = [...new Set(to.map((d) => d.listenerId))];
    const found = new Map((await listeners.find({ where: { id: In(ids) } })).map((l) => [l.id, l]));
    const pairs: Array<{ listenerId: string; target: string }> = [];
    const seen = new Set<string>();
    for (const d of to) {
      const l = found.get(d.listenerId);
      if (!l) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${d.listenerId}`);
      if (l.state !== 'active') throw new KeyhubError('NOT_ENROLLED', `listener ${d.listenerId} is ${l.state}, not active`);
      const targets = d.target === undefined ? l.targets.map((t) => t.name) : [d.target];
      for (const t of targets) {
        if (!l.targets.some((x) => x.name === t)) throw new KeyhubError('TARGET_UNKNOWN', `listener ${d.listenerId} has no target ${t}`);
        const k = `${d.listenerId}/${t}`;
        if (!seen.has(k)) pairs.push({ listenerId: d.listenerId, target: t });
        seen.add(k);
      }
    }
    return pairs;
  }
}
