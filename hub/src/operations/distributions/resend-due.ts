import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { appendAudit, type AuditInput } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { resendOutcome } from '../../domain/resend-backoff';
import { claimDueResends, failTimedOutDistributions, findDistributionsByIds, listenersWithDueResends, requeueResent } from '../../store/queries/distributions';
import { loadVersionsAndKeys } from '../../store/queries/keys';
import { issuePackages, type PackageRequest } from './issue-packages';

/**
 * Re-issues packages that were sent but not confirmed in time, to listeners
 * that are online and have consumed everything queued for them (an offline
 * or catching-up listener gets its packages from its durable consumer;
 * re-sending to it would only pile up copies). Rule (domain/resend-backoff.ts):
 * back-off doubles per attempt; after maxAttempts the distribution fails with
 * TIMEOUT, visible in status. Rows are claimed with SKIP LOCKED so several
 * hub replicas never re-send the same one.
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
    const { ds, config } = this.ctx;
    const { resendAfterSeconds, maxAttempts, onlineWindowSeconds } = config.delivery;
    const candidates = await listenersWithDueResends(ds, resendAfterSeconds, onlineWindowSeconds);
    if (candidates.length === 0) return { reissued: 0, failed: 0 };
    const busy = await withBacklog(candidates);
    const eligible = candidates.filter((id) => !busy.has(id));
    if (eligible.length === 0) return { reissued: 0, failed: 0 };
    return ds.transaction(async (m) => {
      const due = await claimDueResends(m, resendAfterSeconds, onlineWindowSeconds, limit, eligible);
      if (due.length === 0) return { reissued: 0, failed: 0 };
      const exhausted = due.filter((d) => resendOutcome(d.attempts, maxAttempts) === 'fail').map((d) => d.id);
      const retry = due.filter((d) => resendOutcome(d.attempts, maxAttempts) === 'reissue').map((d) => d.id);
      const audit: AuditInput[] = [];
      if (exhausted.length) {
        await failTimedOutDistributions(m, exhausted);
        for (const id of exhausted) audit.push({ actor: 'hub', action: 'distribution.failed', subject: `distribution:${id}`, details: { code: 'TIMEOUT' } });
      }
      if (retry.length) audit.push(...(await this.reissue(m, retry)));
      await appendAudit(m, audit);
      return { reissued: retry.length, failed: exhausted.length };
    });
  }

  /** Fresh packages for `ids`, queued again with one more attempt; returns their audit events. */
  private async reissue(m: EntityManager, ids: string[]): Promise<AuditInput[]> {
    const rows = await findDistributionsByIds(m, ids);
    const { versions, keys } = await loadVersionsAndKeys(m, [...new Set(rows.map((r) => r.keyVersionId))]);
    const requests: PackageRequest[] = rows.map((d) => {
      const version = versions.get(d.keyVersionId)!;
      return { distribution: d, version, key: keys.get(version.keyId)! };
    });
    const issued = await issuePackages(m, this.ctx.keyring, requests, this.ctx.config.delivery.packageTtlSeconds);
    await requeueResent(m, issued);
    return issued.map((i) => ({ actor: 'hub', action: 'distribution.reissued', subject: `distribution:${i.distributionId}`, details: { code: 'TIMEOUT', packageId: i.packageId } }));
  }
}
