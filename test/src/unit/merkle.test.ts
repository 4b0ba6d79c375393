import { strict as assert } from 'node:assert';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import {
  batchLeaf,
  batchStatement,
  buildMerkleBatch,
  decodeEnvelope,
  encodeEnvelope,
  leafHash,
  MESSAGE_TYPES,
  nodeHash,
  rootFromAuditPath,
  verifyEnvelope,
  VerifiedBatches,
  type Receipt,
  type SignedEnvelope,
} from '@keyhub/protocol';

function receipt(i: number): Receipt {
  return {
    type: MESSAGE_TYPES.receipt,
    id: randomUUID(),
    listenerId: 'site-a',
    issuedAt: new Date(0).toISOString(),
    packageId: randomUUID(),
    packageSha256: 'ab'.repeat(32),
    target: `t${i}`,
    outcome: 'imported',
    kcv: 'abcdef',
  };
}

/** Signs payloads as one batch, the way the hub keyring does, with a Node key instead of an HSM. */
function signBatch(payloads: Receipt[], privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']): Array<SignedEnvelope<Receipt>> {
  const { root, paths } = buildMerkleBatch(payloads.map((p) => batchLeaf(p)));
  const value = sign('sha256', batchStatement(root, payloads.length), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');
  return payloads.map((payload, index) => ({
    payload,
    signature: { alg: 'ES256-MERKLE', keyId: 'k', value, batch: { size: payloads.length, index, path: paths[index].map((h) => h.toString('base64')) } },
  }));
}

describe('protocol: Merkle batch signatures (RFC 9162 tree, ES256-MERKLE envelopes)', () => {
  it('builds the RFC 9162 tree: small trees match the definition computed by hand', () => {
    const d = [0, 1, 2, 3, 4].map((i) => Buffer.from([i]));
    const l = d.map((x) => leafHash(x));
    assert.deepEqual(
      l[0],
      createHash('sha256')
        .update(Buffer.from([0, 0]))
        .digest(),
      'leaf = H(0x00 || data)',
    );
    assert.deepEqual(buildMerkleBatch([l[0]]).root, l[0]);
    assert.deepEqual(buildMerkleBatch(l.slice(0, 2)).root, nodeHash(l[0], l[1]));
    // Three leaves split 2 + 1; five split 4 + 1.
    assert.deepEqual(buildMerkleBatch(l.slice(0, 3)).root, nodeHash(nodeHash(l[0], l[1]), l[2]));
    const four = nodeHash(nodeHash(l[0], l[1]), nodeHash(l[2], l[3]));
    assert.deepEqual(buildMerkleBatch(l).root, nodeHash(four, l[4]));
    assert.deepEqual(
      nodeHash(l[0], l[1]),
      createHash('sha256')
        .update(Buffer.from([1]))
        .update(l[0])
        .update(l[1])
        .digest(),
      'node = H(0x01 || left || right)',
    );
    assert.throws(() => buildMerkleBatch([]), RangeError);
  });

  it('proves every leaf of every tree size from 1 to 70, and nothing else', () => {
    for (let n = 1; n <= 70; n++) {
      const leaves = Array.from({ length: n }, () => leafHash(randomBytes(16)));
      const { root, paths } = buildMerkleBatch(leaves);
      for (let i = 0; i < n; i++) {
        assert.deepEqual(rootFromAuditPath(leaves[i], i, n, paths[i]), root, `leaf ${i} of ${n}`);
        assert.ok(paths[i].length <= Math.ceil(Math.log2(n)));
        const other = rootFromAuditPath(leaves[(i + 1) % n], i, n, paths[i]);
        if (n > 1) assert.notDeepEqual(other, root, `another leaf at ${i} of ${n}`);
        if (n > 1) assert.notDeepEqual(rootFromAuditPath(leaves[i], (i + 1) % n, n, paths[i]), root, `index ${i} moved, size ${n}`);
        if (paths[i].length) {
          const bent = paths[i].map((p, k) => (k === 0 ? Buffer.from(p).fill(p[0] ^ 1, 0, 1) : p));
          assert.notDeepEqual(rootFromAuditPath(leaves[i], i, n, bent), root);
          assert.equal(rootFromAuditPath(leaves[i], i, n, paths[i].slice(1)), undefined, 'short path');
        }
        assert.equal(rootFromAuditPath(leaves[i], i, n, [...paths[i], root]), undefined, 'long path');
      }
      assert.equal(rootFromAuditPath(leaves[0], n, n, paths[0]), undefined, 'index out of range');
      assert.equal(rootFromAuditPath(leaves[0], -1, n, paths[0]), undefined, 'negative index');
    }
  });

  it('verifies each envelope of a signed batch on its own, after a round trip on the wire', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const batch = signBatch(
      Array.from({ length: 13 }, (_, i) => receipt(i)),
      privateKey,
    );
    for (const e of batch) {
      const d = decodeEnvelope(encodeEnvelope(e));
      assert.ok(d.ok);
      assert.equal(verifyEnvelope(d.envelope, publicKey), true);
    }
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    assert.equal(verifyEnvelope(batch[0], other), false);
  });

  it('rejects a changed payload, a borrowed proof, a wrong size and a plain signature passed off as a batch one', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const batch = signBatch(
      Array.from({ length: 6 }, (_, i) => receipt(i)),
      privateKey,
    );
    const cache = new VerifiedBatches();
    assert.equal(verifyEnvelope(batch[2], publicKey, cache), true);
    // With the batch already in the cache, the payload still has to hash to its place in the tree.
    assert.equal(verifyEnvelope({ ...batch[2], payload: { ...batch[2].payload, kcv: '000000' } }, publicKey, cache), false);
    assert.equal(verifyEnvelope({ payload: batch[3].payload, signature: batch[2].signature }, publicKey, cache), false);
    const sig = batch[2].signature;
    if (sig.alg !== 'ES256-MERKLE') throw new Error('batch signature expected');
    assert.equal(verifyEnvelope({ ...batch[2], signature: { ...sig, batch: { ...sig.batch, size: 7 } } }, publicKey), false);
    // A plain signature over the payload does not pass as a batch of one: batch sizes start at 2 on the wire.
    const plain = sign('sha256', batchStatement(batchLeaf(batch[0].payload), 1), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');
    const one = { payload: batch[0].payload, signature: { alg: 'ES256-MERKLE', keyId: 'k', value: plain, batch: { size: 1, index: 0, path: [] } } };
    const decoded = decodeEnvelope(Buffer.from(JSON.stringify(one)));
    assert.equal(decoded.ok, false);
    if (!decoded.ok) assert.equal(decoded.code, 'MESSAGE_MALFORMED');
    // Oversized or malformed proofs are malformed messages, with a stable code.
    for (const batchField of [
      { ...sig.batch, path: Array(33).fill(sig.batch.path[0]) },
      { ...sig.batch, path: ['abc'] },
      { ...sig.batch, index: -1 },
      { ...sig.batch, extra: 1 },
    ]) {
      const d = decodeEnvelope(Buffer.from(JSON.stringify({ payload: batch[2].payload, signature: { ...sig, batch: batchField } })));
      assert.equal(d.ok, false);
      if (!d.ok) assert.equal(d.code, 'MESSAGE_MALFORMED');
    }
  });

  it('keeps the verified-batch cache bounded', () => {
    const cache = new VerifiedBatches(3);
    for (const k of ['a', 'b', 'c', 'd']) cache.add(k);
    assert.equal(cache.has('a'), false);
    assert.ok(cache.has('b') && cache.has('c') && cache.has('d'));
  });
});
