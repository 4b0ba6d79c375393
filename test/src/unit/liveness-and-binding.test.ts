import { strict as assert } from 'node:assert';
import { packageSha256 } from '@keyhub/protocol';
import { advancesSequence, freshness, FRESH_FUTURE_MS, FRESH_PAST_MS } from '@keyhub/hub/dist/domain/liveness';
import { applyReceiptEffect, receiptMatchesPackage, type DistributionInBatch, type ReceiptFacts } from '@keyhub/hub/dist/domain/receipt-effects';

const KCV = 'a1b2c3';
const PKG = '00000000-0000-4000-8000-000000000001';
const dist = (over: Partial<DistributionInBatch> = {}): DistributionInBatch => ({ state: 'sent', lastPackageId: PKG, attempts: 1, ...over });
const receipt = (over: Partial<ReceiptFacts>): ReceiptFacts => ({ packageId: PKG, outcome: 'imported', kcv: KCV, ...over });

describe('receipts bind to their package; KCV mismatches are terminal; liveness needs freshness', () => {
  it('a receipt matches only the hash the hub kept of that very envelope', () => {
    const bytes = Buffer.from('{"payload":{},"signature":{}}');
    const stored = Buffer.from(packageSha256(bytes), 'hex');
    assert.equal(receiptMatchesPackage(packageSha256(bytes), stored), true);
    assert.equal(receiptMatchesPackage(packageSha256(Buffer.from('{"payload":{} ,"signature":{}}')), stored), false);
    assert.equal(receiptMatchesPackage(packageSha256(bytes), null), false, 'no kept hash matches nothing');
  });

  it('a distribution failed by a KCV mismatch is not revived, re-issued or confirmed by any later receipt', () => {
    const d = dist();
    assert.equal(applyReceiptEffect(d, receipt({ kcv: 'ffffff' }), KCV, 5), 'kcv_mismatch');
    for (const r of [
      receipt({ outcome: 'failed', error: { code: 'PACKAGE_EXPIRED', detail: 'x' } }),
      receipt({ outcome: 'failed', error: { code: 'TARGET_IMPORT_FAILED', detail: 'x' } }),
      receipt({ outcome: 'imported', kcv: KCV }),
    ]) {
      assert.equal(applyReceiptEffect(d, r, KCV, 5), 'terminal');
      assert.equal(d.state, 'failed');
    }
    // The same holds for a stored failure read from the database, and for a listener that reported the mismatch itself.
    assert.equal(applyReceiptEffect(dist({ state: 'failed', errorCode: 'KCV_MISMATCH' }), receipt({ outcome: 'failed', error: { code: 'PACKAGE_REPLAYED', detail: 'x' } }), KCV, 5), 'terminal');
    const reported = dist();
    assert.equal(applyReceiptEffect(reported, receipt({ outcome: 'failed', error: { code: 'KCV_MISMATCH', detail: 'x' } }), KCV, 5), 'failed');
    assert.equal(applyReceiptEffect(reported, receipt({ outcome: 'failed', error: { code: 'PACKAGE_EXPIRED', detail: 'x' } }), KCV, 5), 'terminal');
    // Other failures stay curable, as before.
    assert.equal(applyReceiptEffect(dist({ state: 'failed', errorCode: 'TIMEOUT' }), receipt({ kcv: KCV }), KCV, 5), 'confirmed');
  });

  it('freshness: within the window only, both ways', () => {
    const now = new Date('2026-01-01T00:10:00.000Z');
    const at = (ms: number) => new Date(now.getTime() + ms).toISOString();
    assert.equal(freshness(at(0), now), 'fresh');
    assert.equal(freshness(at(-FRESH_PAST_MS + 1), now), 'fresh');
    assert.equal(freshness(at(-FRESH_PAST_MS - 1), now), 'stale');
    assert.equal(freshness(at(FRESH_FUTURE_MS + 1), now), 'future');
    assert.equal(freshness('not a time', now), 'stale');
    assert.equal(advancesSequence(5, undefined), true);
    assert.equal(advancesSequence(5, 5), false);
    assert.equal(advancesSequence(6, 5), true);
  });
});
