import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { Journal, REPLAY_WINDOW } from '@keyhub/listener/dist/state/journal';
import { makeTempDir } from '../env';

describe('listener journal and replay window', () => {
  it('accepts new and reordered sequences once, rejects used and too-old ones, and remembers across restarts', async () => {
    const dir = await makeTempDir('journal');
    try {
      const j = Journal.open(dir.path);
      const entry = (sequence: number) => ({ packageId: randomUUID(), sequence, streamSeq: sequence, outcome: 'imported', receipt: '' });
      for (const s of [5, 7, 6]) {
        assert.equal(j.isReplay(s), false, `sequence ${s} is new`);
        j.record(entry(s));
      }
      assert.equal(j.isReplay(6), true);
      assert.equal(j.isReplay(4), false, 'an unseen sequence inside the window is accepted (reordering)');
      j.record(entry(REPLAY_WINDOW + 100));
      assert.equal(j.isReplay(4), true, 'below the window is a replay');
      j.close();
      const again = Journal.open(dir.path);
      assert.equal(again.lastSequence, REPLAY_WINDOW + 100);
      assert.equal(again.isReplay(REPLAY_WINDOW + 100), true);
      assert.equal(again.size, 4);
      again.close();
    } finally {
      await dir.remove();
    }
  });
});
