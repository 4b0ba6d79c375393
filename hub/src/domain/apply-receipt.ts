import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { Receipt } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../audit/audit-log';
import { HubContext } from '../context';
import { DistributionEntity, KeyEntity, KeyVersionEntity } from '../store/entities';
import { issuePackages } from './package-issuer';

export type ReceiptEffect = 'confirmed' | 'duplicate' | 'kcv_mismatch' | 'reissued' | 'failed' | 'ignored';

/**
 * Codes after which the hub can succeed by issuing a fresh package (new
 * sequence number and expiry) rather than by anyone changing anything.
 */
const REISSUE_CODES = new Set(['PACKAGE_EXPIRED', 'PACKAGE_REPLAYED', 'TARGET_IMPORT_FAILED']);

/**
 * Applies a verified receipt. A distribution is confirmed only when the KCV
 * computed at the target equals the key version's KCV; a second receipt for
 * the same distribution changes nothing.
 */
@injectable()
export class ApplyReceipt {
  constructor(private readonly ctx: HubContext) {}

  /**
   * Applies many receipts in one transaction, each behind its own savepoint:
   * one commit (one WAL flush, one hold of the audit-chain lock) for the
   * batch instead of one per receipt. A receipt that fails is rolled back
   * alone and reported as its Error; the others stand.
   */
  async executeBatch(receipts: Receipt[]): Promise<Array<ReceiptEffect | Error>> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const results: Array<ReceiptEffect | Error> = [];
      for (const receipt of receipts) {
        await m.query('SAVEPOINT receipt');
        try {
          results.push(await this.applyIn(m, receipt));
          await m.query('RELEASE SAVEPOINT receipt');
        } catch (err) {
          await m.query('ROLLBACK TO SAVEPOINT receipt');
          results.push(err instanceof Error ? err : new Error(String(err)));
        }
      }
      return results;
    });
  }

  private async applyIn(m: EntityManager, receipt: Receipt): Promise<ReceiptEffect> {
    const { keyring, config } = this.ctx;
    const [pkg] = await m.query('SELECT distribution_id FROM packages WHERE id = $1 AND listener_id = $2', [receipt.packageId, receipt.listenerId]);
    if (!pkg) return 'ignored';
    const d = await m.findOne(DistributionEntity, { where: { id: pkg.distribution_id }, lock: { mode: 'pessimistic_write' } });
    if (!d) return 'ignored';
    // At most once a second: concurrent receipts of one listener would otherwise queue on this row lock.
    await m.query(`UPDATE listeners SET last_seen_at = now() WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < now() - interval '1 second')`, [receipt.listenerId]);
    if (d.state === 'confirmed' || d.state === 'superseded') return 'duplicate';
    const version = await m.findOneOrFail(KeyVersionEntity, { where: { id: d.keyVersionId } });
    const actor = `listener:${receipt.listenerId}`;
    const subject = `distribution:${d.id}`;
    const now = new Date();

    if (receipt.outcome === 'imported' || receipt.outcome === 'already_present') {
      if (receipt.kcv === version.kcv) {
        await m.update(DistributionEntity, { id: d.id }, { state: 'confirmed', targetKcv: receipt.kcv, confirmedAt: now, updatedAt: now, errorCode: null, errorDetail: null });
        await appendAudit(m, [{ actor, action: 'distribution.confirmed', subject, details: { outcome: receipt.outcome, kcv: receipt.kcv, packageId: receipt.packageId, target: d.target } }]);
        return 'confirmed';
      }
      await m.update(DistributionEntity, { id: d.id }, { state: 'failed', targetKcv: receipt.kcv ?? null, errorCode: 'KCV_MISMATCH', errorDetail: 'target reported a different KCV', updatedAt: now });
      await appendAudit(m, [{ actor, action: 'distribution.failed', subject, details: { code: 'KCV_MISMATCH', expected: version.kcv, reported: receipt.kcv ?? null } }]);
      return 'kcv_mismatch';
    }
    if (receipt.outcome !== 'failed' && receipt.outcome !== 'rejected') return 'ignored';
    // A receipt about an older package of this distribution says nothing about the current one.
    if (d.lastPackageId !== receipt.packageId) return 'duplicate';
    const code = receipt.error?.code ?? 'INTERNAL';
    const detail = receipt.error?.detail ?? receipt.outcome;
    if (REISSUE_CODES.has(code) && d.attempts < config.delivery.maxAttempts) {
      const key = await m.findOneOrFail(KeyEntity, { where: { id: version.keyId } });
      const [issued] = await issuePackages(m, keyring, [{ distribution: d, key, version }], config.delivery.packageTtlSeconds);
      await m.update(DistributionEntity, { id: d.id }, { state: 'queued', attempts: d.attempts + 1, lastPackageId: issued.packageId, errorCode: code, errorDetail: detail, updatedAt: now });
      await appendAudit(m, [{ actor, action: 'distribution.reissued', subject, details: { code, attempt: d.attempts + 1, packageId: issued.packageId } }]);
      return 'reissued';
    }
    await m.update(DistributionEntity, { id: d.id }, { state: 'failed', errorCode: code, errorDetail: detail, updatedAt: now });
    await appendAudit(m, [{ actor, action: 'distribution.failed', subject, details: { code, detail, attempts: d.attempts } }]);
    return 'failed';
  }
}
