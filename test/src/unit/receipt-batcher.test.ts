import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { MESSAGE_TYPES, type Receipt } from '@keyhub/protocol';
import type { ReceiptEffect } from '@keyhub/hub/dist/domain/receipt-effects';
import { ReceiptBatcher } from '@keyhub/hub/dist/bus/receipt-batcher';

const receipt = (target: string): Receipt => ({
  type: MESSAGE_TYPES.receipt,
  id: randomUUID(),
  listenerId: 'site-a',
  issuedAt: new Date().toISOString(),
  packageId: randomUUID(),
  packageSha256: 'ab'.repeat(32),
  target,
  outcome: 'imported',
  kcv: 'abcdef',
});

describe('receipt batcher: group commit, one transaction at a time', () => {
  it('runs one batch at a time, gathers what arrives meanwhile into the next, and answers each caller', async () => {
    const batches: string[][] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let release: () => void = () => undefined;
    const apply = async (rs: Receipt[]): Promise<Array<ReceiptEffect | Error>> => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      batches.push(rs.map((r) => r.target));
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      inFlight--;
      return rs.map((r) => (r.target === 'bad' ? new Error('refused') : 'confirmed'));
    };
    const batcher = new ReceiptBatcher(apply, 3, 2);
    const first = [batcher.submit(receipt('a')), batcher.submit(receipt('b'))];
    await new Promise((r) => setTimeout(r, 20));
    // The first batch is still running: these wait, then go together (at most 3 per batch).
    const later = ['c', 'bad', 'e', 'f', 'g'].map((t) =>
      batcher.submit(receipt(t)).then(
        (e) => e,
        (err: Error) => err.message,
      ),
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(batches, [['a', 'b']]);
    release();
    assert.deepEqual(await Promise.all(first), ['confirmed', 'confirmed']);
    assert.deepEqual(await Promise.all(later), ['confirmed', 'refused', 'confirmed', 'confirmed', 'confirmed']);
    assert.deepEqual(batches, [
      ['a', 'b'],
      ['c', 'bad', 'e'],
      ['f', 'g'],
    ]);
    assert.equal(maxInFlight, 1);
  });

  it('rejects every receipt of a batch whose transaction fails, and goes on with the next', async () => {
    let calls = 0;
    const batcher = new ReceiptBatcher(
      async (rs) => {
        calls++;
        if (calls === 1) throw new Error('database gone');
        return rs.map(() => 'duplicate' as const);
      },
      10,
      1,
    );
    const a = await Promise.allSettled([batcher.submit(receipt('a')), batcher.submit(receipt('b'))]);
    assert.deepEqual(
      a.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    assert.equal(await batcher.submit(receipt('c')), 'duplicate');
  });
});
