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

  it('defaults usages per type: TDES encrypt/decrypt, HMAC and key pairs sign/verify, generic secrets derive; lengths per type', () => {
    const cases: Array<[string, string[], number]> = [
      ['TDES-2KEY', ['encrypt', 'decrypt'], 16],
      ['TDES-3KEY', ['encrypt', 'decrypt'], 24],
      ['HMAC-SHA256', ['sign', 'verify'], 32],
      ['HMAC-SHA512', ['sign', 'verify'], 64],
      ['GENERIC-384', ['derive'], 48],
      ['RSA-3072', ['sign', 'verify'], 384],
      ['EC-P521', ['sign', 'verify'], 66],
    ];
    for (const [algorithm, usages, length] of cases) {
      const s = keySpec({ name: 'k', algorithm });
      assert.deepEqual(s.usages, usages, algorithm);
      assert.equal(s.length, length, algorithm);
    }
  });

  it('refuses usages a type cannot have (KEY_USAGE_INVALID) and pairs that extract keys, also across an RSA pair (KEY_USAGE_CONFLICT)', () => {
    const refused: Array<[string, string[], string]> = [
      ['HMAC-SHA256', ['encrypt'], 'KEY_USAGE_INVALID'],
      ['HMAC-SHA384', ['sign', 'derive'], 'KEY_USAGE_INVALID'],
      ['GENERIC-256', ['decrypt'], 'KEY_USAGE_INVALID'],
      ['EC-P256', ['encrypt'], 'KEY_USAGE_INVALID'],
      ['EC-P384', ['wrap'], 'KEY_USAGE_INVALID'],
      ['RSA-2048', ['derive'], 'KEY_USAGE_INVALID'],
      ['RSA-2048', ['wrap', 'decrypt'], 'KEY_USAGE_CONFLICT'],
      ['RSA-4096', ['unwrap', 'encrypt'], 'KEY_USAGE_CONFLICT'],
      ['TDES-3KEY', ['wrap', 'decrypt'], 'KEY_USAGE_CONFLICT'],
    ];
    for (const [algorithm, usages, expected] of refused)
      assert.equal(
        code(() => keySpec({ name: 'k', algorithm, usages })),
        expected,
        `${algorithm} ${usages.join('+')}`,
      );
    const allowed: Array<[string, string[]]> = [
      ['RSA-2048', ['encrypt', 'decrypt']],
      ['RSA-2048', ['wrap', 'unwrap']],
      ['EC-P256', ['derive']],
      ['GENERIC-512', ['sign', 'verify', 'derive']],
      ['TDES-2KEY', ['sign', 'verify']],
    ];
    for (const [algorithm, usages] of allowed) assert.deepEqual(keySpec({ name: 'k', algorithm, usages }).usages, usages);
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
