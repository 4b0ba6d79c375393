import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import {
  canonicalBytes,
  decodeEnvelope,
  encodeEnvelope,
  enrollmentFingerprint,
  fingerprintsEqual,
  LIMITS,
  listenerIdFromUpSubject,
  MESSAGE_TYPES,
  signingInput,
  verifyEnvelope,
  type Receipt,
  type SignedEnvelope,
} from '@keyhub/protocol';

function receipt(overrides: Partial<Receipt> = {}): Receipt {
  return {
    type: MESSAGE_TYPES.receipt,
    id: randomUUID(),
    listenerId: 'site-a',
    issuedAt: new Date().toISOString(),
    packageId: randomUUID(),
    packageSha256: 'ab'.repeat(32),
    target: 'hsm',
    outcome: 'imported',
    kcv: 'abcdef',
    ...overrides,
  };
}

function signed(payload: Receipt): { envelope: SignedEnvelope<Receipt>; publicKey: ReturnType<typeof generateKeyPairSync>['publicKey'] } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const value = sign('sha256', signingInput(payload), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');
  return { envelope: { payload, signature: { alg: 'ES256', keyId: 'k', value } }, publicKey };
}

describe('protocol: canonical encoding, envelopes, schemas', () => {
  it('canonicalizes as RFC 8785 (sorted keys, no whitespace, ES number form)', () => {
    assert.equal(canonicalBytes({ b: [1, 2, 'x'], a: { d: true, c: null }, n: 1e21 }).toString(), '{"a":{"c":null,"d":true},"b":[1,2,"x"],"n":1e+21}');
  });

  it('verifies a signature over the canonical bytes, whatever the key order on the wire', () => {
    const { envelope, publicKey } = signed(receipt());
    const reordered = JSON.parse(JSON.stringify({ signature: envelope.signature, payload: Object.fromEntries(Object.entries(envelope.payload).reverse()) }));
    const decoded = decodeEnvelope(Buffer.from(JSON.stringify(reordered)));
    assert.ok(decoded.ok);
    assert.equal(verifyEnvelope(decoded.envelope, publicKey), true);
  });

  it('rejects a signature after any change to the payload, and under another key', () => {
    const { envelope, publicKey } = signed(receipt());
    assert.equal(verifyEnvelope({ ...envelope, payload: { ...envelope.payload, kcv: 'abcdee' } }, publicKey), false);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    assert.equal(verifyEnvelope(envelope, other), false);
  });

  it('rejects unknown fields, unknown types, bad values and oversized messages with stable codes', () => {
    const { envelope } = signed(receipt());
    const withExtra = { ...envelope, payload: { ...envelope.payload, extra: 1 } };
    const cases: Array<[unknown, string]> = [
      [withExtra, 'MESSAGE_MALFORMED'],
      [{ ...envelope, payload: { ...envelope.payload, type: 'keyhub.v9.nope' } }, 'MESSAGE_UNKNOWN_TYPE'],
      [{ ...envelope, payload: { ...envelope.payload, kcv: 'ABCDEF' } }, 'MESSAGE_MALFORMED'],
      [{ ...envelope, payload: { ...envelope.payload, listenerId: 'Site A; drop' } }, 'MESSAGE_MALFORMED'],
      [{ ...envelope, signature: { ...envelope.signature, alg: 'none' } }, 'MESSAGE_MALFORMED'],
      [{ ...envelope, payload: { ...envelope.payload, error: { code: 'NOT_A_CODE', detail: '' } } }, 'MESSAGE_MALFORMED'],
    ];
    for (const [value, code] of cases) {
      const r = decodeEnvelope(Buffer.from(JSON.stringify(value)));
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.code, code, JSON.stringify(value).slice(0, 120));
    }
    const big = decodeEnvelope(Buffer.alloc(LIMITS.maxMessageBytes + 1, 0x20));
    assert.equal(!big.ok && big.code, 'MESSAGE_TOO_LARGE');
    assert.equal((decodeEnvelope(Buffer.from('{]')) as { code: string }).code, 'MESSAGE_MALFORMED');
    assert.throws(() => encodeEnvelope({ ...envelope, payload: { ...envelope.payload, target: 'x'.repeat(LIMITS.maxMessageBytes) } }), RangeError);
  });

  it('never echoes field values in rejection details', () => {
    const { envelope } = signed(receipt());
    const secretish = 'c0ffee'.repeat(10);
    const r = decodeEnvelope(Buffer.from(JSON.stringify({ ...envelope, payload: { ...envelope.payload, kcv: secretish } })));
    assert.ok(!r.ok);
    assert.ok(!r.detail.includes(secretish));
  });

  it('compares fingerprints ignoring case and separators, and binds enrollment to the listener id', () => {
    const fp = enrollmentFingerprint('site-a', 'AAAA', 'BBBB');
    assert.ok(fingerprintsEqual(fp.toUpperCase().replace(/-/g, ' '), fp));
    assert.ok(!fingerprintsEqual(enrollmentFingerprint('site-b', 'AAAA', 'BBBB'), fp));
    assert.ok(!fingerprintsEqual('', ''));
  });

  it('accepts only its own UP subjects', () => {
    assert.equal(listenerIdFromUpSubject('keyhub.v1.from.site-a.receipt'), 'site-a');
    assert.equal(listenerIdFromUpSubject('keyhub.v1.from.Site_A.receipt'), undefined);
    assert.equal(listenerIdFromUpSubject('keyhub.v1.to.site-a.package'), undefined);
    assert.equal(listenerIdFromUpSubject('other.v1.from.site-a.receipt'), undefined);
  });
});
