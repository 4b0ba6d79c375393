import { injectable } from 'tsyringe';
import { appendAudit, type AuditInput } from '../audit/audit-log';
import { HubContext } from '../context';
import { DistributionEntity, KeyEntity, KeyVersionEntity } from '../store/entities';
import { issuePackages, type PackageRequest } from './package-issuer';

/**
 * Re-issues packages that were sent but not confirmed in time, to listeners
 * that are online and have consumed everything queued for them (an offline
 * or catching-up listener gets its packages from its durable consumer;
 * re-sending to it would only pile up copies). Back-off doubles per attempt.
 * After maxAttempts the distribution fails with TIMEOUT, visible in status.
 * Rows are claimed with SKIP LOCKED so several hub replicas never re-send the same one.
 */
@injectable()
export class ResendDue {
  constructor(private readonly ctx: HubContext) {}

  /**
   * `withBacklog` names the listeners whose durable consumer still holds
   * messages they have not consumed or acked: their packages are not lost,
   * only waiting, so they are left alone.
   */
  async execute(withBacklog: (listenerIds: string[]) => Promise<Set<string>> = async () => new Set(), limit = 500): Promise<{ reissued: number; failed: number }> {
    const { ds, keyring, config } = this.ctx;
    const { resendAfterSeconds, maxAttempts, onlineWindowSeconds, packageTtlSeconds } = config.delivery;
    // confirmed_at IS NULL: sent rows never are confirmed; it lets the partial index find them.
    const dueFilter = `d.confirmed_at IS NULL AND d.state = 'sent'
            AND d.last_sent_at < now() - make_interval(secs => $1 * power(2, LEAST(d.attempts - 1, 6)))
            AND l.last_seen_at > now() - make_interval(secs => $2)`;
    const candidates: Array<{ listener_id: string }> = await ds.query(
      `SELECT DISTINCT d.listener_id FROM distributions d JOIN listeners l ON l.id = d.listener_id WHERE ${dueFilter}`,
      [resendAfterSeconds, onlineWindowSeconds],
    );
    if (candidates.length === 0) return { reissued: 0, failed: 0 };
    const busy = await withBacklog(candidates.map((c) => c.listener_id));
    const eligible = candidates.map((c) => c.listener_id).filter((id) => !busy.has(id));
    if (eligible.length === 0) return { reissued: 0, failed: 0 };
    return ds.transaction(async (m) => {
      const due: Array<{ id: string; attempts: number }> = await m.query(
        `SELECT d.id, d.attempts FROM distributions d JOIN listeners l ON l.id = d.listener_id
          WHERE ${dueFilter} AND d.listener_id = ANY($4)
          ORDER BY d.last_sent_at LIMIT $3
          FOR UPDATE OF d SKIP LOCKED`,
        [resendAfterSeconds, onlineWindowSeconds, limit, eligible],
      );
      if (due.length === 0) return { reissued: 0, failed: 0 };
      const exhausted = due.filter((d) => d.attempts >= maxAttempts).map((d) => d.id);
      const retry = due.filter((d) => d.attempts < maxAttempts).map((d) => d.id);
      const audit: AuditInput[] = [];
      if (exhausted.length) {
        await m.query(`UPDATE distributions SET state = 'failed', error_code = 'TIMEOUT', error_detail = 'no receipt after ' || attempts || ' attempts', updated_at = now() WHERE id = ANY($1)`, [exhausted]);
        for (const id of exhausted) audit.push({ actor: 'hub', action: 'distribution.failed', subject: `distribution:${id}`, details: { code: 'TIMEOUT' } });
      }
      if (retry.length) {
        const rows = await m.findByIds(DistributionEntity, retry);
        const versions = new Map((await m.findByIds(KeyVersionEntity, [...new Set(rows.map((r) => r.keyVersionId))])).map((v) => [v.id, v]));
        const keys = new Map((await m.findByIds(KeyEntity, [...new Set([...versions.values()].map((v) => v.keyId))])).map((k) => [k.id, k]));
        const requests: PackageRequest[] = rows.map((d) => {
          const version = versions.get(d.keyVersionId)!;
          return { distribution: d, version, key: keys.get(version.keyId)! };
        });
        const issued = await issuePackages(m, keyring, requests, packageTtlSeconds);
        await m.query(
          `UPDATE distributions d SET state = 'queued', attempts = d.attempts + 1, last_package_id = v.pkg::uuid, updated_at = now()
             FROM (SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS pkg) v WHERE d.id = v.id::uuid`,
          [issued.map((i) => i.distributionId), issued.map((i) => i.packageId)],
        );
        for (const i of issued) audit.push({ actor: 'hub', action: 'distribution.reissued', subject: `distribution:${i.distributionId}`, details: { code: 'TIMEOUT', packageId: i.packageId } });
      }
      await appendAudit(m, audit);
      return { reissued: retry.length, failed: exhausted.length };
    });
  }
}
