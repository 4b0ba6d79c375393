import { strict as assert } from 'node:assert';
import { KeyhubError } from '@keyhub/shared';
import { assertDistinctNames, distributableAlgorithm, keySpec } from '@keyhub/hub/dist/domain/key-spec';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof KeyhubError);
    return err.code;
  }
  return 'no error';
};

describe('key specification', () => {
  it('defaults usages to encrypt/decrypt and exportable to false, and knows the length', () => {
    const s = keySpec({ name: 'payments/zmk-01', algorithm: 'AES-256' });
    assert.deepEqual(s.usages, ['encrypt', 'decrypt']);
    assert.equal(s.exportable, false);
    assert.equal(s.length, 32);
  });

  it('refuses bad names, unknown algorithms and usages', () => {
    assert.equal(
      code(() => keySpec({ name: '-x', algorithm: 'AES-256' })),
      'INPUT_INVALID',
    );
    assert.equal(
      code(() => keySpec({ name: 'x'.repeat(129), algorithm: 'AES-256' })),
      'INPUT_INVALID',
    );
    assert.equal(
      code(() => keySpec({ name: 'k', algorithm: 'ROT13' })),
      'INPUT_INVALID',
    );
    assert.equal(
      code(() => keySpec({ name: 'k', algorithm: 'AES-256', usages: ['teleport'] })),
      'INPUT_INVALID',
    );
    assert.equal(
      code(() => keySpec({ name: 'k', algorithm: 'AES-256', usages: [] })),
      'INPUT_INVALID',
    );
  });

  it('a bulk request names each key once', () => {
    assert.deepEqual([...assertDistinctNames(['a', 'b'])], ['a', 'b']);
    assert.equal(
      code(() => assertDistinctNames(['a', 'b', 'a'])),
      'INPUT_INVALID',
    );
  });

  it('only known algorithms can be distributed', () => {
    assert.equal(distributableAlgorithm('AES-128'), 'AES-128');
    assert.equal(
      code(() => distributableAlgorithm('RC4')),
      'INPUT_INVALID',
    );
  });
});
