import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomInt, sign, type KeyObject } from 'node:crypto';
import {
  AUDIT_CHECKPOINT_TYPE,
  auditHash,
  canonicalBytes,
  checkpointDigest,
  classifyBreak,
  GENESIS_HASH,
  judgeCheckpointMismatch,
  TAMPER_KINDS,
  verifyAuditChain,
  verifyAuditLedger,
  type AuditCheckpointMessage,
  type StoredAuditEvent,
  type StoredCheckpoint,
} from '@keyhub/protocol';

/*
 * The tamper classification (protocol/src/audit/tamper-kind.ts) and the
 * ledger verifier that uses it, on chains built here: each kind of
 * tampering is done the way someone with write access to the table or the
 * file would do it, and must be named with its first bad event.
 */
const hub = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const hubKey = hub.publicKey.export({ format: 'der', type: 'spki' });
const mallory = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const T0 = 1_700_000_000_000;

function event(seq: number, prevHash: string, n = seq): StoredAuditEvent {
  const e = { seq, at: new Date(T0 + n * 1000), actor: 'op', action: 'key.created', subject: `key:k${n}`, details: { n } };
  return { ...e, prevHash, hash: auditHash(prevHash, e) };
}

function chain(n: number): StoredAuditEvent[] {
  const out: StoredAuditEvent[] = [];
  for (let seq = 1; seq <= n; seq++) out.push(event(seq, out[seq - 2]?.hash ?? GENESIS_HASH));
  return out;
}

/** Chained checkpoints at `seqs`, each signed `after` ms after the event it covers. */
function checkpoints(events: StoredAuditEvent[], seqs: number[], key: KeyObject = hub.privateKey, after = 500): StoredCheckpoint[] {
  const out: StoredCheckpoint[] = [];
  let prev = { seq: 0, digest: GENESIS_HASH };
  for (const seq of seqs) {
    const e = events[seq - 1];
    const payload: AuditCheckpointMessage = { type: AUDIT_CHECKPOINT_TYPE, seq, hash: e.hash, at: new Date(e.at.getTime() + after).toISOString(), prevSeq: prev.seq, prevDigest: prev.digest };
    const signature = sign('sha256', canonicalBytes(payload), { key, dsaEncoding: 'ieee-p1363' }).toString('base64');
    const cp = { seq, hash: e.hash, at: payload.at, prevSeq: prev.seq, prevDigest: prev.digest, signature };
    out.push(cp);
    prev = { seq, digest: checkpointDigest(cp) };
  }
  return out;
}

/** Re-links and re-hashes events from index `from` on, as an attacker who can recompute hashes would. */
function rechain(events: StoredAuditEvent[], from: number): StoredAuditEvent[] {
  const out = events.map((e) => ({ ...e }));
  for (let i = from; i < out.length; i++) {
    out[i].prevHash = out[i - 1]?.hash ?? GENESIS_HASH;
    out[i].hash = auditHash(out[i].prevHash, out[i]);
  }
  return out;
}

const anchorAt = (events: StoredAuditEvent[], seq: number) => (seq === 0 ? { seq: 0, hash: GENESIS_HASH } : { seq, hash: events[seq - 1].hash });

describe('audit tamper classification (pure)', () => {
  it('an edited field, hash kept: changed at that event, named by its stored hash', () => {
    const ev = chain(8);
    const rows = ev.map((e) => ({ ...e }));
    rows[3].actor = 'mallory';
    assert.deepEqual(pick(classifyBreak(anchorAt(ev, 2), rows.slice(2))), { kind: 'changed', seq: 4, id: ev[3].hash });
  });

  it('an edited field with its own hash recomputed: changed at that event (its successor still names the original)', () => {
    const rows = chain(8).map((e) => ({ ...e }));
    rows[3].subject = 'key:other';
    rows[3].hash = auditHash(rows[3].prevHash, rows[3]);
    const f = classifyBreak(anchorAt(rows, 2), rows.slice(2));
    assert.deepEqual(pick(f), { kind: 'changed', seq: 4, id: rows[3].hash });
    assert.match(f.detail, /recomputed/);
  });

  it('an edited previous-hash link: changed', () => {
    const rows = chain(6).map((e) => ({ ...e }));
    rows[0].prevHash = 'f'.repeat(64);
    assert.equal(classifyBreak(anchorAt(rows, 0), rows).kind, 'changed');
  });

  it('a sequence gap: deleted, named by the hash its successor still links to', () => {
    const ev = chain(8);
    const rows = [...ev.slice(0, 4), ...ev.slice(5)];
    assert.deepEqual(pick(classifyBreak(anchorAt(ev, 3), rows.slice(3))), { kind: 'deleted', seq: 5, id: ev[4].hash });
    const two = [...ev.slice(0, 4), ...ev.slice(6)];
    const f = classifyBreak(anchorAt(ev, 3), two.slice(3));
    assert.deepEqual(pick(f), { kind: 'deleted', seq: 5, id: null });
    assert.match(f.detail, /5 to 6/);
  });

  it('a deletion hidden by renumbering the rest: deleted (the next event hashes only at its old number)', () => {
    const ev = chain(8);
    const rows = [...ev.slice(0, 4), ...ev.slice(5).map((e) => ({ ...e, seq: e.seq - 1 }))];
    assert.deepEqual(pick(classifyBreak(anchorAt(ev, 3), rows.slice(3))), { kind: 'deleted', seq: 5, id: ev[4].hash });
  });

  it('an inserted event, well formed and linked, the rest renumbered: inserted (the next one links to its predecessor)', () => {
    const ev = chain(8);
    const forged = event(5, ev[3].hash, 99);
    const rows = [...ev.slice(0, 4), forged, ...ev.slice(4).map((e) => ({ ...e, seq: e.seq + 1 }))];
    const f = classifyBreak(anchorAt(ev, 3), rows.slice(3));
    assert.deepEqual(pick(f), { kind: 'inserted', seq: 5, id: forged.hash });
    // With a hash that does not even reproduce, the same.
    const sloppy = [...ev.slice(0, 4), { ...forged, hash: 'a'.repeat(64) }, ...ev.slice(4).map((e) => ({ ...e, seq: e.seq + 1 }))];
    assert.equal(classifyBreak(anchorAt(ev, 4), sloppy.slice(4)).kind, 'inserted');
  });

  it('a duplicate sequence number (an extra line in a file): inserted', () => {
    const ev = chain(6);
    const rows = [...ev.slice(0, 4), event(4, ev[3].hash, 77), ...ev.slice(4)];
    assert.deepEqual(pick(classifyBreak(anchorAt(ev, 3), rows.slice(3))), { kind: 'inserted', seq: 4, id: rows[4].hash });
  });

  it('two events swapped, by sequence number, by file order, or by content: reordered at the first of them', () => {
    const ev = chain(8);
    const bySeq = [...ev.slice(0, 4), { ...ev[5], seq: 5 }, { ...ev[4], seq: 6 }, ...ev.slice(6)];
    assert.deepEqual(pick(classifyBreak(anchorAt(ev, 3), bySeq.slice(3))), { kind: 'reordered', seq: 5, id: ev[5].hash });
    const byLine = [...ev.slice(0, 4), ev[5], ev[4], ...ev.slice(6)];
    assert.deepEqual(pick(classifyBreak(anchorAt(ev, 4), byLine.slice(4))), { kind: 'reordered', seq: 5, id: ev[5].hash });
    const content = ev.map((e) => ({ ...e }));
    const body = (e: StoredAuditEvent) => ({ at: e.at, actor: e.actor, action: e.action, subject: e.subject, details: e.details });
    Object.assign(content[4], body(ev[5]));
    Object.assign(content[5], body(ev[4]));
    assert.equal(classifyBreak(anchorAt(ev, 4), content.slice(4)).kind, 'reordered');
  });

  it('a checkpoint that disagrees with a consistent chain: truncated when events post-date its signature, else changed', () => {
    const cp = { seq: 6, hash: 'c'.repeat(64), at: new Date(T0).toISOString() };
    assert.deepEqual(pick(judgeCheckpointMismatch(cp, 3, 'the hub', { seq: 5, hash: 'e'.repeat(64) })), { kind: 'truncated', seq: 5, id: 'e'.repeat(64) });
    assert.deepEqual(pick(judgeCheckpointMismatch(cp, 3, 'the hub')), { kind: 'changed', seq: 4, id: null });
  });
});

describe('audit ledger verification with tamper kinds', () => {
  const ev = chain(12);
  const cps = checkpoints(ev, [4, 8]);

  it('an untouched ledger verifies, with its head', async () => {
    const v = await verifyAuditLedger(ev, cps, hubKey, { witness: cps });
    assert.equal(v.ok, true, v.detail);
    assert.deepEqual(v.head, { seq: 12, hash: ev[11].hash });
    assert.equal(v.events, 12);
    assert.deepEqual(v.witnessed, { checkpoints: 2, lastSeq: 8 });
  });

  for (const [name, rows, kind, seq] of [
    ['changed', ev.map((e, i) => (i === 5 ? { ...e, actor: 'mallory' } : e)), 'changed', 6],
    ['deleted', ev.filter((e) => e.seq !== 6), 'deleted', 6],
    ['inserted', [...ev.slice(0, 5), event(6, ev[4].hash, 50), ...ev.slice(5).map((e) => ({ ...e, seq: e.seq + 1 }))], 'inserted', 6],
    ['reordered', [...ev.slice(0, 5), { ...ev[6], seq: 6 }, { ...ev[5], seq: 7 }, ...ev.slice(7)], 'reordered', 6],
    ['truncated (a checkpoint beyond the end)', ev.slice(0, 6), 'truncated', 7],
  ] as const) {
    it(`names the first bad event and the kind: ${name}`, async () => {
      const v = await verifyAuditLedger(rows, cps, hubKey);
      assert.equal(v.ok, false);
      assert.equal(v.kind, kind, v.detail);
      assert.equal(v.firstBad?.seq, seq, v.detail);
    });
  }

  it("a truncation with the checkpoints removed too passes on the ledger alone and is caught by a site's copy", async () => {
    const cut = ev.slice(0, 6);
    assert.equal((await verifyAuditLedger(cut, cps.slice(0, 1), hubKey)).ok, true, 'what a witness is for');
    const v = await verifyAuditLedger(cut, cps.slice(0, 1), hubKey, { witness: cps });
    assert.deepEqual([v.kind, v.firstBad?.seq], ['truncated', 7]);
  });

  it('a ledger cut back past a checkpoint and regrown: truncated, from the first event dated after the signature', async () => {
    const regrown = rechain([...ev.slice(0, 5), ...ev.slice(5).map((e) => ({ ...e, at: new Date(e.at.getTime() + 3_600_000), actor: 'regrown' }))], 5);
    const v = await verifyAuditLedger(regrown, cps.slice(0, 1), hubKey, { witness: cps });
    assert.deepEqual([v.kind, v.firstBad?.seq], ['truncated', 6], v.detail);
  });

  it('a rewrite re-chained behind a checkpoint: changed, from the first event after the last good checkpoint', async () => {
    const forged = rechain(
      ev.map((e, i) => (i === 5 ? { ...e, actor: 'mallory' } : e)),
      5,
    );
    const v = await verifyAuditLedger(forged, cps, hubKey);
    assert.deepEqual([v.kind, v.firstBad?.seq], ['changed', 5], v.detail);
    assert.match(v.detail ?? '', /re-chained/);
  });

  it('a checkpoint not signed by the pinned key: forged, at its event', async () => {
    const other = checkpoints(ev, [4, 8], mallory.privateKey);
    const v = await verifyAuditLedger(ev, [cps[0], { ...cps[1], signature: other[1].signature }], hubKey);
    assert.deepEqual([v.kind, v.firstBad?.seq], ['forged', 8]);
    assert.match(v.detail ?? '', /signature does not verify under the pinned hub key/);
    // Everything re-signed by another key is consistent under that key, and forged under the pinned one.
    assert.equal((await verifyAuditLedger(ev, other, mallory.publicKey)).ok, true);
    assert.equal((await verifyAuditLedger(ev, other, hubKey)).kind, 'forged');
  });

  it('a range starts at a checkpointed event and goes on: verifies; its first event must be the signed one', async () => {
    const window = ev.slice(3, 9);
    const v = await verifyAuditLedger(window, [cps[1]].concat([]), hubKey, { start: 4, partial: true });
    assert.equal(v.kind, 'forged', 'no checkpoint at the start: nothing ties the range to the chain');
    const ok = await verifyAuditLedger(window, cps, hubKey, { start: 4, partial: true, witness: cps });
    assert.equal(ok.ok, true, ok.detail);
    assert.equal(ok.events, 6);
    assert.equal(ok.start, 4);
    const edited = window.map((e, i) => (i === 0 ? { ...e, subject: 'key:x' } : e));
    assert.deepEqual(pick4(await verifyAuditLedger(edited, cps, hubKey, { start: 4, partial: true })), ['changed', 4]);
    const gap = window.filter((e) => e.seq !== 6);
    assert.deepEqual(pick4(await verifyAuditLedger(gap, cps, hubKey, { start: 4, partial: true })), ['deleted', 6]);
    // Not partial: the site's checkpoint beyond the range's end would be a loss.
    const cutRange = ev.slice(3, 7);
    assert.deepEqual(pick4(await verifyAuditLedger(cutRange, cps.slice(0, 1), hubKey, { start: 4, witness: cps })), ['truncated', 8]);
    assert.equal((await verifyAuditLedger(cutRange, cps.slice(0, 1), hubKey, { start: 4, partial: true, witness: cps })).ok, true);
  });
});

describe('audit ledger verification agrees with the chain check on random tampering', () => {
  const ev = chain(16);
  const cps = checkpoints(ev, [5, 10, 14]);
  const mutations: Array<(rows: StoredAuditEvent[]) => StoredAuditEvent[]> = [
    (rows) => rows.map((e, i) => (i === randomInt(rows.length) ? { ...e, subject: 'key:x' } : e)),
    (rows) => rows.filter((_, i) => i !== randomInt(rows.length)),
    (rows) => {
      const i = randomInt(1, rows.length);
      return [...rows.slice(0, i), event(i + 1, rows[i - 1].hash, 500), ...rows.slice(i).map((e) => ({ ...e, seq: e.seq + 1 }))];
    },
    (rows) => {
      const i = randomInt(rows.length - 1);
      return [...rows.slice(0, i), { ...rows[i + 1], seq: rows[i].seq }, { ...rows[i], seq: rows[i + 1].seq }, ...rows.slice(i + 2)];
    },
    (rows) => rows.slice(0, randomInt(rows.length)),
    (rows) => {
      const i = randomInt(rows.length);
      return rechain(
        rows.map((e, k) => (k === i ? { ...e, actor: 'mallory' } : e)),
        i,
      );
    },
    (rows) => {
      const i = randomInt(rows.length);
      return [...rows.slice(0, i), rows[i], ...rows.slice(i)];
    },
  ];

  it('for 400 random tamperings (some several at once): ok exactly when verifyAuditChain says ok, else a kind and a first bad event', async () => {
    for (let run = 0; run < 400; run++) {
      let rows: StoredAuditEvent[] = ev;
      for (let n = 1 + (run % 3); n > 0 && rows.length > 2; n--) rows = mutations[randomInt(mutations.length)](rows);
      const witness = run % 2 ? { witness: cps } : {};
      const a = await verifyAuditChain(rows, cps, hubKey, witness);
      const b = await verifyAuditLedger(rows, cps, hubKey, witness);
      assert.equal(b.ok, a.ok, `run ${run}: ${a.firstBad?.reason} / ${b.kind} ${b.detail}`);
      if (!b.ok) {
        assert.ok(TAMPER_KINDS.includes(b.kind!), `run ${run}: ${b.kind}`);
        assert.ok(b.firstBad && b.firstBad.seq >= 1, `run ${run}`);
      }
    }
  });
});

function pick(f: { kind: string; seq: number; id: string | null }): { kind: string; seq: number; id: string | null } {
  return { kind: f.kind, seq: f.seq, id: f.id };
}

function pick4(v: { kind?: string; firstBad?: { seq: number } }): [string | undefined, number | undefined] {
  return [v.kind, v.firstBad?.seq];
}
