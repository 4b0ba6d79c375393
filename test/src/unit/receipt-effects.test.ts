import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import type { ErrorCode } from '@keyhub/protocol';
import { canTransition, DISTRIBUTION_STATES, type DistributionState } from '@keyhub/hub/dist/domain/distribution-state';
import { applyReceiptEffect, REISSUE_CODES, type DistributionInBatch, type ReceiptFacts } from '@keyhub/hub/dist/domain/receipt-effects';

const KCV = 'a1b2c3';
const PKG = '00000000-0000-4000-8000-000000000001';
const dist = (over: Partial<DistributionInBatch> = {}): DistributionInBatch => ({ state: 'sent', lastPackageId: PKG, attempts: 1, ...over });
const receipt = (over: Partial<ReceiptFacts>): ReceiptFacts => ({ packageId: PKG, outcome: 'imported', kcv: KCV, ...over });

describe('receipt effects', () => {
  it('confirms only when the target reproduced the KCV', () => {
    const d = dist();
    assert.equal(applyReceiptEffect(d, receipt({}), KCV, 5), 'confirmed');
    assert.deepEqual(d.final, { state: 'confirmed', targetKcv: KCV });
    const bad = dist();
    assert.equal(applyReceiptEffect(bad, receipt({ outcome: 'already_present', kcv: 'ffffff' }), KCV, 5), 'kcv_mismatch');
    assert.deepEqual(bad.final, { state: 'failed', code: 'KCV_MISMATCH', detail: 'target reported a different KCV', targetKcv: 'ffffff' });
  });

  it('a second receipt for a settled distribution changes nothing', () => {
    const d = dist();
    applyReceiptEffect(d, receipt({}), KCV, 5);
    const before = structuredClone(d);
    assert.equal(applyReceiptEffect(d, receipt({ outcome: 'failed', error: { code: 'TARGET_IMPORT_FAILED', detail: 'x' } }), KCV, 5), 'duplicate');
    assert.deepEqual(d, before);
    assert.equal(applyReceiptEffect(dist({ state: 'superseded' }), receipt({}), KCV, 5), 'duplicate');
  });

  it('a failure about an older package is a duplicate', () => {
    assert.equal(applyReceiptEffect(dist({ lastPackageId: 'other' }), receipt({ outcome: 'failed', error: { code: 'PACKAGE_EXPIRED', detail: 'expired' } }), KCV, 5), 'duplicate');
  });

  it('re-issues a curable failure while attempts are left, then fails', () => {
    const d = dist({ attempts: 4 });
    assert.equal(applyReceiptEffect(d, receipt({ outcome: 'failed', error: { code: 'PACKAGE_EXPIRED', detail: 'late' } }), KCV, 5), 'reissued');
    assert.deepEqual(d, { state: 'queued', lastPackageId: null, attempts: 4, final: { state: 'queued', code: 'PACKAGE_EXPIRED', detail: 'late' } });
    // The old package's next receipt no longer names the current package.
    assert.equal(applyReceiptEffect(d, receipt({ outcome: 'failed', error: { code: 'PACKAGE_EXPIRED', detail: 'expired' } }), KCV, 5), 'duplicate');
    const last = dist({ attempts: 5 });
    assert.equal(applyReceiptEffect(last, receipt({ outcome: 'rejected', error: { code: 'PACKAGE_EXPIRED', detail: 'expired' } }), KCV, 5), 'failed');
    assert.deepEqual(last.final, { state: 'failed', code: 'PACKAGE_EXPIRED', detail: 'expired' });
    const hard = dist();
    assert.equal(applyReceiptEffect(hard, receipt({ outcome: 'failed', error: { code: 'UNWRAP_FAILED', detail: 'no' } }), KCV, 5), 'failed');
    const noError = dist();
    assert.equal(applyReceiptEffect(noError, receipt({ outcome: 'failed' }), KCV, 5), 'failed');
    assert.deepEqual(noError.final, { state: 'failed', code: 'INTERNAL', detail: 'failed' });
  });

  it('ignores outcomes that are neither an import nor a failure', () => {
    const d = dist();
    assert.equal(applyReceiptEffect(d, receipt({ outcome: 'destroyed' }), KCV, 5), 'ignored');
    assert.equal(d.final, undefined);
  });

  it('every state change it makes is an edge of the state machine, and a settled distribution never moves', () => {
    const outcome = fc.constantFrom('imported', 'already_present', 'failed', 'rejected', 'destroyed');
    const code = fc.constantFrom(...([...REISSUE_CODES, 'INTERNAL', 'UNWRAP_FAILED'] as ErrorCode[]));
    fc.assert(
      fc.property(
        fc.constantFrom(...DISTRIBUTION_STATES),
        fc.array(fc.record({ outcome, code, kcv: fc.constantFrom(KCV, 'ffffff'), current: fc.boolean() }), { maxLength: 6 }),
        fc.integer({ min: 1, max: 6 }),
        (start, receipts, attempts) => {
          const d = dist({ state: start, attempts });
          for (const r of receipts) {
            const from = d.state as DistributionState;
            const facts = receipt({
              outcome: r.outcome as ReceiptFacts['outcome'],
              kcv: r.kcv,
              packageId: r.current && d.lastPackageId ? d.lastPackageId : 'older',
              error: { code: r.code, detail: 'd' },
            });
            const effect = applyReceiptEffect(d, facts, KCV, 5);
            const to = d.state as DistributionState;
            if (effect === 'duplicate' || effect === 'ignored') assert.equal(to, from);
            else assert.ok(canTransition(from, to), `${from} -> ${to} (${effect})`);
          }
        },
      ),
    );
  });
});
