import { strict as assert } from 'node:assert';
import { mapConcurrent } from '@keyhub/shared';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('mapConcurrent', () => {
  it('keeps input order and never runs more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const out = await mapConcurrent(
      Array.from({ length: 20 }, (_, i) => i),
      3,
      async (i) => {
        running++;
        most = Math.max(most, running);
        await tick(i % 4);
        running--;
        return i * 2;
      },
    );
    assert.deepEqual(
      out,
      Array.from({ length: 20 }, (_, i) => i * 2),
    );
    assert.equal(most, 3);
  });

  it('after a failure starts nothing new, and rejects only once the calls in flight have settled', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const failed = mapConcurrent(
      Array.from({ length: 10 }, (_, i) => i),
      3,
      async (i) => {
        started.push(i);
        if (i === 1) {
          await tick(5);
          throw new Error('item 1 failed');
        }
        await tick(i === 0 || i === 2 ? 40 : 1);
        finished.push(i);
        return i;
      },
    );
    await assert.rejects(failed, /item 1 failed/);
    // Items 0 and 2 were in flight with item 1: they finished before the rejection.
    assert.deepEqual(finished.slice().sort(), [0, 2]);
    assert.deepEqual(started, [0, 1, 2], 'nothing started after the failure');
  });
});
