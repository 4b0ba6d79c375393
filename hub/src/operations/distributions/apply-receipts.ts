import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { Receipt } from '@keyhub/protocol';
import { appendAudit, lockAuditChain, type AuditInput } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { isDistributable } from '../../domain/key-lifecycle';
import { freshness } from '../../domain/liveness';
import { applyReceiptEffect, receiptMatchesPackage, type DistributionInBatch, type ReceiptEffect } from '../../domain/receipt-effects';
import { DistributionEntity } from '../../store/entities';
import { confirmDistributions, failDistributions, lockReceiptDistributions, requeueAfterReceipt, type DistributionCloud, type ReceiptDistributionRow } from '../../store/queries/distributions';
import { loadVersionsAndKeys } from '../../store/queries/keys';
import { markListenersSeenThrottled } from '../../store/queries/listeners';
import { issuePackages, type PackageRequest } from './issue-packages';

export type { ReceiptEffect };

/**
 * Applies verified receipts. Rules (domain/receipt-effects.ts): a receipt
 * applies only to the package whose envelope hash it names (another
 * package's hash, or a package of another listener, changes nothing); a
 * distribution is confirmed only when the KCV computed at the target equals
 * the key version's KCV; a second receipt for the same distribution changes
 * nothing; a failure a fresh package can cure is re-issued while attempts
 * are left; a KCV mismatch is terminal. Only a fresh receipt
 * (domain/liveness.ts) counts as a sign of life of its listener.
 */
@injectable()
export class ApplyReceipt {
  constructor(private readonly ctx: HubContext) {}

  /**
   * Applies a batch of receipts in one transaction with set-based SQL: one
   * read of every distribution involved (locked), one UPDATE per outcome,
   * one audit INSERT, one commit. The batch holds the audit chain's lock
   * (every appender's first lock), so it must be short: done receipt by
   * receipt, batches held it long enough that a concurrent distribute's
   * chunks waited 0.3-1.3 s each for it. If the batch fails as a whole, each
   * receipt is applied alone, so one receipt's trouble is reported as its
   * own Error and does not hold back the others.
   */
  async executeBatch(receipts: Receipt[]): Promise<Array<ReceiptEffect | Error>> {
    try {
      return await this.ctx.ds.transaction((m) => this.applyAll(m, receipts));
    } catch (err) {
      if (receipts.length === 1) return [err instanceof Error ? err : new Error(String(err))];
      const results: Array<ReceiptEffect | Error> = [];
      for (const r of receipts) {
        try {
          results.push((await this.ctx.ds.transaction((m) => this.applyAll(m, [r])))[0]);
        } catch (one) {
          results.push(one instanceof Error ? one : new Error(String(one)));
        }
      }
      return results;
    }
  }

  private async applyAll(m: EntityManager, receipts: Receipt[]): Promise<ReceiptEffect[]> {
    await lockAuditChain(m);
    const found = await lockReceiptDistributions(
      m,
      receipts.map((r) => r.packageId),
      receipts.map((r) => r.listenerId),
      receipts.map((_, i) => i),
    );
    const byIdx = new Map(found.map((f) => [f.idx, f]));
    const current = new Map<string, DistributionInBatch>();
    const effects: ReceiptEffect[] = [];
    const reissues: ReceiptDistributionRow[] = [];
    receipts.forEach((receipt, idx) => {
      const f = byIdx.get(idx);
      if (!f) return effects.push('ignored');
      if (!receiptMatchesPackage(receipt.packageSha256, f.envelope_sha256)) {
        byIdx.delete(idx);
        return effects.push('package_mismatch');
      }
      let d = current.get(f.id);
      if (!d) current.set(f.id, (d = { state: f.state, lastPackageId: f.last_package_id, attempts: f.attempts, errorCode: f.error_code }));
      const effect = applyReceiptEffect(d, receipt, f.kcv, this.ctx.config.delivery.maxAttempts);
      if (effect === 'reissued') reissues.push(f);
      return effects.push(effect);
    });
    const issuedFor = await this.reissue(m, receipts, reissues, current);
    // What a cloud target said of the import (its key and version ids), kept with the distribution the receipt confirmed.
    const cloudOf = new Map<string, DistributionCloud>();
    receipts.forEach((receipt, idx) => {
      const f = byIdx.get(idx);
      if (f && effects[idx] === 'confirmed' && receipt.cloud) cloudOf.set(f.id, receipt.cloud);
    });
    await this.writeFinals(m, current, issuedFor, cloudOf);
    const now = new Date();
    const seen = [...new Set([...byIdx.values()].filter((f) => freshness(receipts[f.idx].issuedAt, now) === 'fresh').map((f) => receipts[f.idx].listenerId))];
    if (seen.length) await markListenersSeenThrottled(m, seen);
    await appendAudit(m, auditEvents(receipts, byIdx, effects, issuedFor));
    return effects;
  }

  /** Fresh packages for the distributions still to be re-issued at the end of the batch, in one batch; distribution id to package id. */
  private async reissue(m: EntityManager, receipts: Receipt[], reissues: ReceiptDistributionRow[], current: Map<string, DistributionInBatch>): Promise<Map<string, string>> {
    const issuedFor = new Map<string, string>();
    const toReissue = [...new Map(reissues.filter((f) => current.get(f.id)!.final?.state === 'queued').map((f) => [f.id, f])).values()];
    if (!toReissue.length) return issuedFor;
    const { versions, keys } = await loadVersionsAndKeys(m, [...new Set(toReissue.map((f) => f.key_version_id))]);
    // A version that is no longer active (suspended, deactivated, compromised, destroyed) is never sent again: the distribution fails instead.
    const requests: PackageRequest[] = [];
    for (const f of toReissue) {
      const version = versions.get(f.key_version_id)!;
      if (!isDistributable(version.state)) {
        current.get(f.id)!.final = { state: 'failed', code: 'KEY_VERSION_NOT_ACTIVE', detail: `key version ${version.version} is ${version.state}: not sent again` };
        continue;
      }
      const distribution = Object.assign(new DistributionEntity(), { id: f.id, listenerId: receipts[f.idx].listenerId, target: f.target, keyVersionId: f.key_version_id });
      requests.push({ distribution, version, key: keys.get(version.keyId)! });
    }
    const { keyring, config } = this.ctx;
    for (const i of await issuePackages(m, keyring, requests, config.delivery.packageTtlSeconds)) issuedFor.set(i.distributionId, i.packageId);
    return issuedFor;
  }

  /** One UPDATE per final state. */
  private async writeFinals(m: EntityManager, current: Map<string, DistributionInBatch>, issuedFor: Map<string, string>, cloudOf: Map<string, DistributionCloud>): Promise<void> {
    const finals = [...current].filter(([, d]) => d.final);
    const confirmed = finals.flatMap(([id, d]) => (d.final?.state === 'confirmed' ? [{ id, kcv: d.final.targetKcv, cloud: cloudOf.get(id) ?? null }] : []));
    if (confirmed.length) await confirmDistributions(m, confirmed);
    const failed = finals.flatMap(([id, d]) => (d.final?.state === 'failed' ? [{ id, ...d.final }] : []));
    if (failed.length) await failDistributions(m, failed);
    const queued = finals.flatMap(([id, d]) => (d.final?.state === 'queued' ? [{ id, ...d.final }] : []));
    if (queued.length) await requeueAfterReceipt(m, queued, issuedFor);
  }
}

/** The audit events of a batch, in arrival order: one per receipt that changed something. */
/** What a cloud receipt names as its wrapping when the key went in clear (listener/src/targets/cloud/importer.ts). */
const CLEAR_IMPORT_WRAPPING = 'JWK';

function auditEvents(receipts: Receipt[], byIdx: Map<number, ReceiptDistributionRow>, effects: ReceiptEffect[], issuedFor: Map<string, string>): AuditInput[] {
  const events: AuditInput[] = [];
  receipts.forEach((receipt, idx) => {
    const f = byIdx.get(idx);
    const effect = effects[idx];
    if (!f) return;
    const actor = `listener:${receipt.listenerId}`;
    const subject = `distribution:${f.id}`;
    if (effect === 'confirmed') {
      events.push({ actor, action: 'distribution.confirmed', subject, details: { outcome: receipt.outcome, kcv: receipt.kcv ?? null, packageId: receipt.packageId, target: f.target } });
      // A cloud import in clear (JWK inside TLS; only where the key's policy opts in, which the listener checks): on the record as such.
      if (receipt.cloud?.wrapping === CLEAR_IMPORT_WRAPPING) {
        events.push({
          actor,
          action: 'distribution.clear_import',
          subject,
          details: { target: f.target, packageId: receipt.packageId, cloudKeyId: receipt.cloud.keyId, cloudVersionId: receipt.cloud.versionId, kcv: receipt.kcv ?? null },
        });
      }
    } else if (effect === 'kcv_mismatch') {
      events.push({ actor, action: 'distribution.failed', subject, details: { code: 'KCV_MISMATCH', expected: f.kcv, reported: receipt.kcv ?? null } });
    } else if (effect === 'reissued') {
      events.push({ actor, action: 'distribution.reissued', subject, details: { code: receipt.error?.code ?? 'INTERNAL', attempt: f.attempts + 1, packageId: issuedFor.get(f.id) ?? null } });
    } else if (effect === 'failed') {
      events.push({ actor, action: 'distribution.failed', subject, details: { code: receipt.error?.code ?? 'INTERNAL', detail: receipt.error?.detail ?? receipt.outcome, attempts: f.attempts } });
    }
  });
  return events;
}
