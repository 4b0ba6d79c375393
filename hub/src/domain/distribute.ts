import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { In } from 'typeorm';
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

export interface DistributeInput {
  keyName: string;
  version?: number;
  /** 'all': every target of every active listener. */
  to: Destination[] | 'all';
  actor: string;
}

export interface DistributeResult {
  keyName: string;
  version: number;
  kcv: string;
  queued: Array<{ distributionId: string; listenerId: string; target: string }>;
  skipped: Array<{ distributionId: string; listenerId: string; target: string; state: string }>;
}

/**
 * One call for any fan-out: writes the distribution rows, their signed
 * packages in the outbox and the audit events in one transaction. Pushing a
 * key again where it is confirmed or in flight changes nothing; where it
 * failed, it is queued afresh.
 */
@injectable()
export class Distribute {
  constructor(private readonly ctx: HubContext) {}

  async execute(input: DistributeInput): Promise<DistributeResult> {
    const { ds, keyring, config } = this.ctx;
    return ds.transaction(async (m) => {
      const key = await m.findOne(KeyEntity, { where: { name: input.keyName } });
      if (!key) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${input.keyName}"`);
      const versionNo = input.version ?? key.currentVersion;
      const version = await m.findOne(KeyVersionEntity, { where: { keyId: key.id, version: versionNo } });
      if (!version) throw new KeyhubError('KEY_NOT_FOUND', `key "${input.keyName}" has no version ${versionNo}`);
      if (version.state !== 'active') throw new KeyhubError('INPUT_INVALID', `version ${versionNo} of "${input.keyName}" is ${version.state}`);

      const pairs = await this.resolveDestinations(m.getRepository(ListenerEntity), input.to);
      const existing = await m.find(DistributionEntity, { where: { keyVersionId: version.id, listenerId: In([...new Set(pairs.map((p) => p.listenerId))]) } });
      const byPair = new Map(existing.map((d) => [`${d.listenerId}/${d.target}`, d]));

      const now = new Date();
      const fresh: DistributionEntity[] = [];
      const requeued: DistributionEntity[] = [];
      const result: DistributeResult = { keyName: key.name, version: versionNo, kcv: version.kcv, queued: [], skipped: [] };
      for (const p of pairs) {
        const d = byPair.get(`${p.listenerId}/${p.target}`);
        if (!d) {
          fresh.push(Object.assign(new DistributionEntity(), {
            id: randomUUID(), keyVersionId: version.id, listenerId: p.listenerId, target: p.target, state: 'queued', attempts: 1,
            lastPackageId: null, lastSentAt: null, targetKcv: null, errorCode: null, errorDetail: null, createdBy: input.actor,
            createdAt: now, updatedAt: now, confirmedAt: null,
          }));
        } else if (d.state === 'failed') {
          Object.assign(d, { state: 'queued', attempts: 1, errorCode: null, errorDetail: null, updatedAt: now });
          requeued.push(d);
        } else {
          result.skipped.push({ distributionId: d.id, listenerId: d.listenerId, target: d.target, state: d.state });
        }
      }
      const toIssue = [...fresh, ...requeued];
      if (toIssue.length === 0) return result;

      await insertRows(m, 'distributions',
        ['id', 'key_version_id', 'listener_id', 'target', 'state', 'attempts', 'created_by', 'created_at', 'updated_at'],
        fresh.map((d) => [d.id, d.keyVersionId, d.listenerId, d.target, d.state, d.attempts, d.createdBy, d.createdAt, d.updatedAt]));
      if (requeued.length) {
        await m.query(`UPDATE distributions SET state = 'queued', attempts = 1, error_code = NULL, error_detail = NULL, updated_at = $2 WHERE id = ANY($1)`, [requeued.map((d) => d.id), now]);
      }
      const requests: PackageRequest[] = toIssue.map((distribution) => ({ distribution, key, version }));
      const issued = await issuePackages(m, keyring, requests, config.delivery.packageTtlSeconds);
      await m.query(
        `UPDATE distributions d SET last_package_id = v.pkg::uuid FROM (SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS pkg) v WHERE d.id = v.id::uuid`,
        [issued.map((i) => i.distributionId), issued.map((i) => i.packageId)],
      );
      const audit: AuditInput[] = toIssue.map((d) => ({
        actor: input.actor,
        action: 'distribution.queued',
        subject: `distribution:${d.id}`,
        details: { key: key.name, version: versionNo, listener: d.listenerId, target: d.target, requeued: requeued.includes(d) },
      }));
      await appendAudit(m, audit);
      result.queued = toIssue.map((d) => ({ distributionId: d.id, listenerId: d.listenerId, target: d.target }));
      return result;
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
