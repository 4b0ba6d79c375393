import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { Receipt } from '@keyhub/protocol';
import { appendAudit, lockAuditChain, type AuditInput } from '../audit/audit-log';
import { HubContext } from '../context';
import { DistributionEntity, KeyEntity, KeyVersionEntity } from '../store/entities';
import { issuePackages } from './package-issuer';

export type ReceiptEffect = 'confirmed' | 'duplicate' | 'kcv_mismatch' | 'reissued' | 'failed' | 'ignored';

/**
 * Codes after which the hub can succeed by issuing a fresh package (new
 * sequence number and expiry) rather than by anyone changing anything.
 */
const REISSUE_CODES = new Set(['PACKAGE_EXPIRED', 'PACKAGE_REPLAYED', 'TARGET_IMPORT_FAILED']);

/** What the batch reads per receipt: its distribution (locked) and the key version's KCV. */
interface Found {
  idx: number;
  id: string;
  state: string;
  last_package_id: string | null;
  attempts: number;
  target: string;
  key_version_id: string;
}

/** A distribution's state as the receipts of one batch change it, in arrival order. */
interface Current {
  state: string;
  lastPackageId: string | null;
  attempts: number;
  final?:
    | { state: 'confirmed'; targetKcv: string }
    | { state: 'failed'; code: string; detail: string; targetKcv?: string | null }
    | { state: 'queued'; code: string; detail: string };
}

/**
 * Applies verified receipts. A distribution is confirmed only when the KCV
 * computed at the target equals the key version's KCV; a second receipt for
 * the same distribution changes nothing.
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
    const { keyring, config } = this.ctx;
    await lockAuditChain(m);
    const found: Array<Found & { kcv: string }> = await m.query(
      `SELECT r.idx, d.id, d.state, d.last_package_id, d.attempts, d.target, d.key_version_id, v.kcv
         FROM unnest($1::uuid[], $2::text[], $3::int[]) AS r(package_id, listener_id, idx)
         JOIN packages p ON p.id = r.package_id AND p.listener_id = r.listener_id
         JOIN distributions d ON d.id = p.distribution_id
         JOIN key_versions v ON v.id = d.key_version_id
        ORDER BY d.id
          FOR UPDATE OF d`,
      [receipts.map((r) => r.packageId), receipts.map((r) => r.listenerId), receipts.map((_, i) => i)],
    );
    const byIdx = new Map(found.map((f) => [f.idx, f]));
    const current = new Map<string, Current>();
    const effects: ReceiptEffect[] = [];
    const reissues: Array<{ idx: number; f: Found & { kcv: string } }> = [];
    receipts.forEach((receipt, idx) => {
      const f = byIdx.get(idx);
      if (!f) return effects.push('ignored');
      let d = current.get(f.id);
      if (!d) current.set(f.id, (d = { state: f.state, lastPackageId: f.last_package_id, attempts: f.attempts }));
      if (d.state === 'confirmed' || d.state === 'superseded') return effects.push('duplicate');
      if (receipt.outcome === 'imported' || receipt.outcome === 'already_present') {
        if (receipt.kcv === f.kcv) {
          d.state = 'confirmed';
          d.final = { state: 'confirmed', targetKcv: receipt.kcv };
          return effects.push('confirmed');
        }
        d.state = 'failed';
        d.final = { state: 'failed', code: 'KCV_MISMATCH', detail: 'target reported a different KCV', targetKcv: receipt.kcv ?? null };
        return effects.push('kcv_mismatch');
      }
      if (receipt.outcome !== 'failed' && receipt.outcome !== 'rejected') return effects.push('ignored');
      // A receipt about an older package of this distribution says nothing about the current one.
      if (d.lastPackageId !== receipt.packageId) return effects.push('duplicate');
      const code = receipt.error?.code ?? 'INTERNAL';
      const detail = receipt.error?.detail ?? receipt.outcome;
      if (REISSUE_CODES.has(code) && d.attempts < config.delivery.maxAttempts) {
        d.state = 'queued';
        // Its package is replaced below: later receipts about the old one are duplicates.
        d.lastPackageId = null;
        d.final = { state: 'queued', code, detail };
        reissues.push({ idx, f });
        return effects.push('reissued');
      }
      d.state = 'failed';
      d.final = { state: 'failed', code, detail };
      return effects.push('failed');
    });

    // Fresh packages for the re-issues, in one batch.
    const issuedFor = new Map<string, string>();
    const toReissue = [...new Map(reissues.filter((r) => current.get(r.f.id)!.final?.state === 'queued').map((r) => [r.f.id, r.f])).values()];
    if (toReissue.length) {
      const versions = new Map((await m.findByIds(KeyVersionEntity, [...new Set(toReissue.map((f) => f.key_version_id))])).map((v) => [v.id, v]));
      const keys = new Map((await m.findByIds(KeyEntity, [...new Set([...versions.values()].map((v) => v.keyId))])).map((k) => [k.id, k]));
      const requests = toReissue.map((f) => {
        const version = versions.get(f.key_version_id)!;
        const distribution = Object.assign(new DistributionEntity(), { id: f.id, listenerId: receipts[f.idx].listenerId, target: f.target, keyVersionId: f.key_version_id });
        return { distribution, version, key: keys.get(version.keyId)! };
      });
      for (const i of await issuePackages(m, keyring, requests, config.delivery.packageTtlSeconds)) issuedFor.set(i.distributionId, i.packageId);
    }

    const finals = [...current].filter(([, d]) => d.final);
    const confirmed = finals.flatMap(([id, d]) => (d.final?.state === 'confirmed' ? [{ id, kcv: d.final.targetKcv }] : []));
    if (confirmed.length) {
      await m.query(
        `UPDATE distributions d SET state = 'confirmed', target_kcv = v.kcv, confirmed_at = now(), updated_at = now(), error_code = NULL, error_detail = NULL
           FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS kcv) v WHERE d.id = v.id`,
        [confirmed.map((c) => c.id), confirmed.map((c) => c.kcv)],
      );
    }
    const failed = finals.flatMap(([id, d]) => (d.final?.state === 'failed' ? [{ id, ...d.final }] : []));
    if (failed.length) {
      await m.query(
        `UPDATE distributions d SET state = 'failed', error_code = v.code, error_detail = v.detail, updated_at = now(),
                target_kcv = CASE WHEN v.set_kcv THEN v.kcv ELSE d.target_kcv END
           FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS code, unnest($3::text[]) AS detail, unnest($4::boolean[]) AS set_kcv, unnest($5::text[]) AS kcv) v
          WHERE d.id = v.id`,
        [failed.map((f) => f.id), failed.map((f) => f.code), failed.map((f) => f.detail), failed.map((f) => f.targetKcv !== undefined), failed.map((f) => f.targetKcv ?? null)],
      );
    }
    const queued = finals.flatMap(([id, d]) => (d.final?.state === 'queued' ? [{ id, ...d.final }] : []));
    if (queued.length) {
      await m.query(
        `UPDATE distributions d SET state = 'queued', attempts = d.attempts + 1, last_package_id = v.pkg, error_code = v.code, error_detail = v.detail, updated_at = now()
           FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::uuid[]) AS pkg, unnest($3::text[]) AS code, unnest($4::text[]) AS detail) v WHERE d.id = v.id`,
        [queued.map((q) => q.id), queued.map((q) => issuedFor.get(q.id)), queued.map((q) => q.code), queued.map((q) => q.detail)],
      );
    }
    // At most once a second per listener: concurrent batches would otherwise queue on these row locks.
    const seen = [...new Set(found.map((f) => receipts[f.idx].listenerId))];
    if (seen.length) {
      await m.query(`UPDATE listeners SET last_seen_at = now() WHERE id = ANY($1) AND (last_seen_at IS NULL OR last_seen_at < now() - interval '1 second')`, [seen]);
    }

    // The audit events, in arrival order.
    const events: AuditInput[] = [];
    receipts.forEach((receipt, idx) => {
      const f = byIdx.get(idx);
      const effect = effects[idx];
      if (!f) return;
      const actor = `listener:${receipt.listenerId}`;
      const subject = `distribution:${f.id}`;
      if (effect === 'confirmed') {
        events.push({ actor, action: 'distribution.confirmed', subject, details: { outcome: receipt.outcome, kcv: receipt.kcv ?? null, packageId: receipt.packageId, target: f.target } });
      } else if (effect === 'kcv_mismatch') {
        events.push({ actor, action: 'distribution.failed', subject, details: { code: 'KCV_MISMATCH', expected: f.kcv, reported: receipt.kcv ?? null } });
      } else if (effect === 'reissued') {
        events.push({ actor, action: 'distribution.reissued', subject, details: { code: receipt.error?.code ?? 'INTERNAL', attempt: f.attempts + 1, packageId: issuedFor.get(f.id) ?? null } });
      } else if (effect === 'failed') {
        events.push({ actor, action: 'distribution.failed', subject, details: { code: receipt.error?.code ?? 'INTERNAL', detail: receipt.error?.detail ?? receipt.outcome, attempts: f.attempts } });
      }
    });
    await appendAudit(m, events);
    return effects;
  }
}
