import { strict as assert } from 'node:assert';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { canonicalBytes } from '@keyhub/protocol';
import { auditHash, checkpointBytes, GENESIS_HASH } from '@keyhub/hub/dist/audit/audit-hash';
import { verifyAuditChain, type StoredAuditEvent, type StoredCheckpoint } from '@keyhub/hub/dist/audit/verify-audit';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const hubKey = publicKey.export({ format: 'der', type: 'spki' });

function chain(n: number): StoredAuditEvent[] {
  const events: StoredAuditEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const e = { seq, at: new Date(1_700_000_000_000 + seq), actor: 'op', action: 'key.created', subject: `key:k${seq}`, details: { version: 1, n: seq } };
    const hash = auditHash(prev, e);
    events.push({ ...e, prevHash: prev, hash });
    prev = hash;
  }
  return events;
}

function checkpoint(e: StoredAuditEvent): StoredCheckpoint {
  return { seq: e.seq, hash: e.hash, signature: sign('sha256', checkpointBytes(e.seq, e.hash), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') };
}

describe('audit hash chain verification', () => {
  it('hashes exactly the RFC 8785 bytes of the whole record, with or without the details canonicalized beforehand', () => {
    const texts = ['', 'plain', 'quote " and \\ back', 'ünïcödé €', '\u0000\u001f\u2028', '😀 pair', 'lone \ud800 surrogate', 'zähler:42'];
    const pick = <T>(xs: T[]): T => xs[randomBytes(1)[0] % xs.length];
    const value = (depth: number): unknown => {
      const r = randomBytes(1)[0] % (depth > 2 ? 4 : 6);
      if (r === 0) return pick(texts);
      if (r === 1) return randomBytes(4).readInt32LE(0);
      if (r === 2) return pick([true, false, null]);
      if (r === 3) return randomBytes(2).readUInt16LE(0) / 8;
      if (r === 4) return Array.from({ length: randomBytes(1)[0] % 4 }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: randomBytes(1)[0] % 5 }, () => [pick(texts) + randomBytes(1).toString('hex'), value(depth + 1)]));
    };
    for (let i = 0; i < 500; i++) {
      const details = Object.fromEntries(Array.from({ length: 1 + (i % 6) }, (_, k) => [`${pick(texts)}${k}`, value(0)])) as Record<string, never>;
      const record = { seq: 1 + randomBytes(4).readUInt32LE(0), at: new Date(1_700_000_000_000 + i * 997), actor: pick(texts), action: pick(texts), subject: pick(texts), details };
      const prev = randomBytes(32).toString('hex');
      const whole = canonicalBytes({ seq: record.seq, at: record.at.toISOString(), actor: record.actor, action: record.action, subject: record.subject, details });
      const expected = createHash('sha256').update(prev, 'utf8').update(whole).digest('hex');
      assert.equal(auditHash(prev, record), expected);
      assert.equal(auditHash(prev, record, canonicalBytes(details)), expected);
    }
  });

  it('accepts an intact chain with checkpoints', async () => {
    const events = chain(20);
    const r = await verifyAuditChain(events, [checkpoint(events[9]), checkpoint(events[19])], hubKey);
    assert.equal(r.ok, true);
    assert.equal(r.events, 20);
    assert.equal(r.head?.seq, 20);
  });

  it('names the first changed event', async () => {
    const events = chain(10);
    events[4] = { ...events[4], actor: 'mallory' };
    const r = await verifyAuditChain(events, [], hubKey);
    assert.deepEqual(r.firstBad, { seq: 5, reason: 'content does not match its hash' });
  });

  it('detects a removed event, and a recomputed tail after an edit', async () => {
    const events = chain(10);
    const r = await verifyAuditChain([...events.slice(0, 3), ...events.slice(4)], [], hubKey);
    assert.equal(r.firstBad?.seq, 4);
    // An attacker who edits event 3 and recomputes every later hash is caught by the signed checkpoint.
    const forged = chain(10).map((e) => ({ ...e }));
    let prev = forged[1].hash;
    for (let i = 2; i < forged.length; i++) {
      if (i === 2) forged[i].actor = 'mallory';
      forged[i].prevHash = prev;
      forged[i].hash = auditHash(prev, forged[i]);
      prev = forged[i].hash;
    }
    const r2 = await verifyAuditChain(forged, [checkpoint(events[7])], hubKey);
    assert.equal(r2.ok, false);
    assert.equal(r2.firstBad?.seq, 8);
  });

  it('detects truncation behind a checkpoint, and a checkpoint not signed by the hub', async () => {
    const events = chain(10);
    const r = await verifyAuditChain(events.slice(0, 6), [checkpoint(events[8])], hubKey);
    assert.equal(r.ok, false);
    assert.match(r.firstBad?.reason ?? '', /removed/);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
    const r2 = await verifyAuditChain(events, [checkpoint(events[5])], other);
    assert.equal(r2.firstBad?.seq, 6);
    assert.match(r2.firstBad?.reason ?? '', /signature/);
  });
});
