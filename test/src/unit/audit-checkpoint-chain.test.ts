import { strict as assert } from 'node:assert';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  AUDIT_CHECKPOINT_TYPE,
  auditHash,
  canonicalBytes,
  checkpointBytes,
  checkpointDigest,
  checkpointLinkProblems,
  decodeEnvelope,
  encodeEnvelope,
  GENESIS_HASH,
  verifyAuditChain,
  verifyAuditSegment,
  type AuditCheckpointMessage,
  type SignedEnvelope,
  type StoredAuditEvent,
  type StoredCheckpoint,
  type WitnessCheckpointLine,
} from '@keyhub/protocol';
import { CheckpointStore, exportWitness } from '@keyhub/listener/dist/state/checkpoints';

const hub = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const hubKey = hub.publicKey.export({ format: 'der', type: 'spki' });
const mallory = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function chain(n: number, actorAt?: { seq: number; actor: string }): StoredAuditEvent[] {
  const events: StoredAuditEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const e = { seq, at: new Date(1_700_000_000_000 + seq), actor: actorAt?.seq === seq ? actorAt.actor : 'op', action: 'key.created', subject: `key:k${seq}`, details: { n: seq } };
    const hash = auditHash(prev, e);
    events.push({ ...e, prevHash: prev, hash });
    prev = hash;
  }
  return events;
}

/** Chained checkpoints over the given events, signed by `key`. */
function checkpoints(events: StoredAuditEvent[], seqs: number[], key: KeyObject = hub.privateKey): StoredCheckpoint[] {
  const out: StoredCheckpoint[] = [];
  let prev = { seq: 0, digest: GENESIS_HASH };
  for (const seq of seqs) {
    const e = events[seq - 1];
    const payload: AuditCheckpointMessage = { type: AUDIT_CHECKPOINT_TYPE, seq, hash: e.hash, at: new Date(1_700_000_100_000 + seq).toISOString(), prevSeq: prev.seq, prevDigest: prev.digest };
    const cp = {
      seq,
      hash: e.hash,
      at: payload.at,
      prevSeq: payload.prevSeq,
      prevDigest: payload.prevDigest,
      signature: sign('sha256', canonicalBytes(payload), { key, dsaEncoding: 'ieee-p1363' }).toString('base64'),
    };
    out.push(cp);
    prev = { seq, digest: checkpointDigest(cp) };
  }
  return out;
}

describe('audit checkpoint chain and witness comparison', () => {
  const events = chain(30);
  const cps = checkpoints(events, [5, 12, 20, 28]);

  it('accepts an intact chain with chained checkpoints, and reports what a site witnessed', async () => {
    const r = await verifyAuditChain(events, cps, hubKey, { witness: [cps[1], cps[2]] });
    assert.equal(r.ok, true, JSON.stringify(r.firstBad));
    assert.deepEqual(r.witnessed, { checkpoints: 2, lastSeq: 20 });
  });

  it('a removed or replaced checkpoint breaks the next link', async () => {
    const removed = await verifyAuditChain(events, [cps[0], cps[2], cps[3]], hubKey);
    assert.equal(removed.ok, false);
    assert.equal(removed.firstBad?.seq, 20);
    assert.match(removed.firstBad?.reason ?? '', /does not link/);
    assert.equal(checkpointLinkProblems([cps[0], cps[0]]).size, 1, 'a repeated checkpoint');
  });

  it('legacy (seq, hash) checkpoints are accepted only before the chained ones', async () => {
    const legacy = (seq: number): StoredCheckpoint => ({
      seq,
      hash: events[seq - 1].hash,
      signature: sign('sha256', checkpointBytes(seq, events[seq - 1].hash), { key: hub.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64'),
    });
    assert.equal((await verifyAuditChain(events, [legacy(3)], hubKey)).ok, true);
    const late = await verifyAuditChain(events, [...cps.slice(0, 2), legacy(15)], hubKey);
    assert.equal(late.ok, false);
    assert.match(late.firstBad?.reason ?? '', /unchained/);
  });

  it('a history rewritten, re-chained and re-signed under another key verifies only under that key; the pinned key and the site copy catch it', async () => {
    const forged = chain(30, { seq: 7, actor: 'mallory' });
    const forgedCps = checkpoints(forged, [5, 12, 20, 28], mallory.privateKey);
    const malloryKey = mallory.publicKey.export({ format: 'der', type: 'spki' });
    assert.equal((await verifyAuditChain(forged, forgedCps, malloryKey)).ok, true, 'self-consistent under its own key');
    const pinned = await verifyAuditChain(forged, forgedCps, hubKey);
    assert.equal(pinned.ok, false);
    assert.equal(pinned.firstBad?.seq, 5);
    const witnessed = await verifyAuditChain(forged, forgedCps, hubKey, { witness: [cps[1]] });
    assert.equal(witnessed.ok, false);
    // Even with the attacker's checkpoints dropped from the comparison, the site's checkpoint at 12 names the rewrite.
    const onlyWitness = await verifyAuditChain(forged, [], hubKey, { witness: [cps[1]] });
    assert.equal(onlyWitness.firstBad?.seq, 12);
    assert.match(onlyWitness.firstBad?.reason ?? '', /differs from the site's signed checkpoint/);
  });

  it('a truncation back past a witnessed checkpoint is caught even when the hub dropped its own checkpoints', async () => {
    const r = await verifyAuditChain(events.slice(0, 15), [], hubKey, { witness: [cps[2]] });
    assert.equal(r.ok, false);
    assert.match(r.firstBad?.reason ?? '', /site holds a checkpoint at event 20: events were removed/);
  });

  it('a site copy not signed by the pinned key, or holding two checkpoints for one event, is reported', async () => {
    const foreign = checkpoints(events, [12], mallory.privateKey)[0];
    assert.match((await verifyAuditChain(events, cps, hubKey, { witness: [foreign] })).firstBad?.reason ?? '', /not signed by the pinned hub key/);
    const fork = { ...cps[1], at: new Date(1_800_000_000_000).toISOString() };
    fork.signature = sign('sha256', canonicalBytes({ type: AUDIT_CHECKPOINT_TYPE, seq: fork.seq, hash: fork.hash, at: fork.at, prevSeq: fork.prevSeq, prevDigest: fork.prevDigest }), {
      key: hub.privateKey,
      dsaEncoding: 'ieee-p1363',
    }).toString('base64');
    assert.match((await verifyAuditChain(events, cps, hubKey, { witness: [cps[1], fork] })).firstBad?.reason ?? '', /two different hub-signed checkpoints/);
  });

  it('the segment check names a gap, a broken link, a checkpointed event that changed, and an event missing before the head', async () => {
    assert.deepEqual(await verifyAuditSegment(events.slice(11), cps[1], 30), { ok: true, events: 18 });
    assert.equal((await verifyAuditSegment(events, undefined, 30)).ok, true);
    const changed = chain(30, { seq: 12, actor: 'mallory' });
    assert.deepEqual(await verifyAuditSegment(changed.slice(11), cps[1], 30), { ok: false, seq: 12, reason: 'event 12 no longer has the hash its checkpoint signed' });
    const gap = [...events.slice(11, 15), ...events.slice(16)];
    assert.deepEqual(await verifyAuditSegment(gap, cps[1], 30), { ok: false, seq: 16, reason: 'event 16 is missing' });
    assert.deepEqual(await verifyAuditSegment(events.slice(11, 20), cps[1], 25), { ok: false, seq: 21, reason: 'event 21 is missing' });
  });

  it('the checkpoint message decodes as a strict, signed message of its own type', () => {
    const cp = cps[1];
    const envelope: SignedEnvelope<AuditCheckpointMessage> = {
      payload: { type: AUDIT_CHECKPOINT_TYPE, seq: cp.seq, hash: cp.hash, at: cp.at!, prevSeq: cp.prevSeq!, prevDigest: cp.prevDigest! },
      signature: { alg: 'ES256', keyId: 'hub', value: cp.signature },
    };
    const decoded = decodeEnvelope(encodeEnvelope(envelope));
    assert.equal(decoded.ok, true);
    const extra = decodeEnvelope(Buffer.from(JSON.stringify({ ...envelope, payload: { ...envelope.payload, listenerId: 'x' } })));
    assert.equal(extra.ok, false);
  });
});

describe('listener witness store', () => {
  const events = chain(10);
  const cps = checkpoints(events, [2, 4, 6, 8, 10]);
  const line = (cp: StoredCheckpoint): WitnessCheckpointLine => ({
    type: 'checkpoint',
    payload: { type: AUDIT_CHECKPOINT_TYPE, seq: cp.seq, hash: cp.hash, at: cp.at!, prevSeq: cp.prevSeq!, prevDigest: cp.prevDigest! },
    signature: cp.signature,
    receivedAt: new Date().toISOString(),
  });
  let home: string;

  beforeEach(() => {
    home = mkdtempSync(path.join(tmpdir(), 'witness-'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('appends owner-only, dedupes, survives a torn last line, and stays bounded keeping the newest', () => {
    const store = CheckpointStore.open(home, 2);
    assert.equal(store.add(line(cps[0])), 'stored');
    assert.equal(store.add(line(cps[0])), 'present');
    assert.equal(statSync(store.path).mode & 0o777, 0o600);
    for (const cp of cps.slice(1)) store.add(line(cp));
    // Past 2 × max it was rewritten with the newest `max`.
    assert.ok(store.size <= 4);
    assert.equal(store.lastSeq, 10);
    writeFileSync(store.path, readFileSync(store.path, 'utf8') + '{"type":"checkpoint","payl', { flag: 'w' });
    const reopened = CheckpointStore.open(home, 2);
    assert.equal(reopened.skipped, 1);
    assert.equal(reopened.lastSeq, 10);
  });

  it('exports a header with the pinned key and the checkpoints, oldest first, and refuses before a hub key is pinned', async () => {
    const store = CheckpointStore.open(home);
    store.add(line(cps[2]));
    store.add(line(cps[0]));
    assert.throws(() => exportWitness(store, { listenerId: 'site-x', hubFingerprint: 'fp', hubKey: undefined }, path.join(home, 'none.jsonl')), /NOT_ENROLLED|no pinned hub key/);
    const out = path.join(home, 'copy.jsonl');
    const summary = exportWitness(store, { listenerId: 'site-x', hubFingerprint: 'fp', hubKey }, out);
    assert.equal(summary.checkpoints, 2);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; payload?: { seq: number } });
    assert.equal(lines[0].type, 'witness');
    assert.deepEqual(
      lines.slice(1).map((l) => l.payload?.seq),
      [2, 6],
    );
    const r = await verifyAuditChain(events, cps, hubKey, { witness: [cps[0], cps[2]] });
    assert.equal(r.ok, true);
  });
});
