import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { KeyhubError } from '@keyhub/shared';
import { chunkSize, everyTarget, expandDestinations, MIN_CHUNK, planChunks, type ListenerTargets } from '@keyhub/hub/dist/domain/distribute-plan';
import { assignSequences, countByListener } from '@keyhub/hub/dist/domain/sequences';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof KeyhubError);
    return err.code;
  }
  return 'no error';
};

describe('distribute planning', () => {
  it('cuts a call into at least ~8 chunks, each between MIN_CHUNK and issueBatch packages', () => {
    assert.equal(chunkSize(50, 1000), 100);
    assert.equal(chunkSize(2_000, 1000), 250);
    assert.equal(chunkSize(100_000, 1000), 1000);
    assert.equal(chunkSize(500, 20), 20);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200_000 }), fc.integer({ min: 1, max: 10_000 }), (total, issueBatch) => {
        const size = chunkSize(total, issueBatch);
        assert.ok(size <= issueBatch);
        assert.ok(size >= Math.min(MIN_CHUNK, issueBatch));
      }),
    );
  });

  it('chunks cover the requests in order, without overlap', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (items, size) => {
        const chunks = planChunks(items, size);
        assert.deepEqual(
          chunks.flatMap((c) => c.items),
          items,
        );
        chunks.forEach((c, i) => {
          assert.equal(c.from, i * size);
          assert.ok(c.items.length > 0 && c.items.length <= size);
        });
      }),
    );
  });

  it('expands destinations: all targets when none is named, no repeats, order kept', () => {
    const listeners = new Map<string, ListenerTargets>([
      ['a', { id: 'a', state: 'active', targets: [{ name: 'hsm' }, { name: 'jks' }] }],
      ['b', { id: 'b', state: 'active', targets: [{ name: 'kms' }] }],
      ['p', { id: 'p', state: 'pending_approval', targets: [{ name: 'hsm' }] }],
    ]);
    assert.deepEqual(expandDestinations([{ listenerId: 'b' }, { listenerId: 'a', target: 'jks' }, { listenerId: 'a' }], listeners), [
      { listenerId: 'b', target: 'kms' },
      { listenerId: 'a', target: 'jks' },
      { listenerId: 'a', target: 'hsm' },
    ]);
    assert.equal(
      code(() => expandDestinations([], listeners)),
      'INPUT_INVALID',
    );
    assert.equal(
      code(() => expandDestinations([{ listenerId: 'x' }], listeners)),
      'LISTENER_NOT_FOUND',
    );
    assert.equal(
      code(() => expandDestinations([{ listenerId: 'p' }], listeners)),
      'NOT_ENROLLED',
    );
    assert.equal(
      code(() => expandDestinations([{ listenerId: 'a', target: 'kms' }], listeners)),
      'TARGET_UNKNOWN',
    );
    assert.deepEqual(everyTarget([...listeners.values()].filter((l) => l.state === 'active')).length, 3);
    assert.equal(
      code(() => everyTarget([])),
      'LISTENER_NOT_FOUND',
    );
  });

  it("numbers each listener's packages consecutively after its allocated block", () => {
    const requests = ['a', 'b', 'a', 'c', 'a', 'b'].map((listenerId) => ({ distribution: { listenerId } }));
    assert.deepEqual(
      [...countByListener(requests)],
      [
        ['a', 3],
        ['b', 2],
        ['c', 1],
      ],
    );
    assert.deepEqual(
      assignSequences(
        requests,
        new Map([
          ['a', 10],
          ['b', 0],
          ['c', 41],
        ]),
      ),
      [11, 1, 12, 42, 13, 2],
    );
  });
});
