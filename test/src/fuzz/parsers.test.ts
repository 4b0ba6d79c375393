import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomBytes, randomUUID, sign as nodeSign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  AUDIT_CHECKPOINT_TYPE,
  AUDIT_EXPORT_VERSION,
  auditHash,
  canonicalBytes,
  CHECKPOINT_GENESIS,
  checkpointDigest,
  GENESIS_HASH,
  publicKeyFingerprint,
  verifyAuditChain,
  witnessCheckpointLine,
  WITNESS_EXPORT_VERSION,
  type AuditCheckpointMessage,
  type AuditDetails,
  type StoredCheckpoint,
} from '@keyhub/protocol';
import { readAuditExport, readWitnessCopy } from '@keyhub/hub/cli/dist/audit-file';
import { CliError } from '@keyhub/hub/cli/dist/errors';
import { CheckpointStore } from '@keyhub/listener/dist/state/checkpoints';
import { Journal, type JournalEntry } from '@keyhub/listener/dist/state/journal';
import { makeTempDir, type TempDir } from '../env';
import { fuzzParams, fuzzTimeout } from './lib/budget';
import { assertStableCode, countMessage, countRuns, ProcessGuard, reportStats } from './lib/guards';
import { mutateJson, recipeArb, textOpArb, treeOpArb, type Recipe, type TextOp } from './lib/mutate';

/* ---------- files as lines, and their mutations ---------- */

type FileOp =
  | { op: 'line'; line: number; recipe: Recipe }
  | { op: 'delete'; line: number }
  | { op: 'duplicate'; line: number }
  | { op: 'swap'; a: number; b: number }
  | { op: 'insert'; at: number; text: string }
  | { op: 'crlf' }
  | { op: 'bytes'; text: TextOp };

const n = fc.nat({ max: 1_000_000 });

function fileOpArb(extraLines: string[]): fc.Arbitrary<FileOp> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.record({ op: fc.constant('line' as const), line: n, recipe: recipeArb }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), line: n }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('duplicate' as const), line: n }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('swap' as const), a: n, b: n }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('insert' as const),
        at: n,
        text: fc.oneof(
          fc.string({ maxLength: 40 }),
          fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
          fc.constantFrom('', ' ', '\t', '\r', '\ufeff', 'x'.repeat(200_000), ...extraLines),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('crlf' as const) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('bytes' as const), text: textOpArb }) },
  );
}

function buildFile(values: unknown[], ops: FileOp[]): Buffer {
  const lines: Buffer[] = values.map((v) => Buffer.from(JSON.stringify(v), 'utf8'));
  const at = (i: number): number => (lines.length ? i % lines.length : 0);
  let crlf = false;
  const tail: TextOp[] = [];
  for (const o of ops) {
    if (o.op === 'line' && lines.length) {
      const i = at(o.line);
      try {
        lines[i] = mutateJson(JSON.parse(lines[i].toString('utf8')), o.recipe);
      } catch {
        // Not JSON any more, or nested too deep to walk (an earlier op): only its bytes can be mutated further.
        for (const t of o.recipe.text) lines[i] = textOnBytes(lines[i], t);
      }
    }
    if (o.op === 'delete' && lines.length) lines.splice(at(o.line), 1);
    if (o.op === 'duplicate' && lines.length) lines.splice(at(o.line), 0, lines[at(o.line)]);
    if (o.op === 'swap' && lines.length) [lines[at(o.a)], lines[at(o.b)]] = [lines[at(o.b)], lines[at(o.a)]];
    if (o.op === 'insert') lines.splice(o.at % (lines.length + 1), 0, Buffer.from(o.text, 'utf8'));
    if (o.op === 'crlf') crlf = true;
    if (o.op === 'bytes') tail.push(o.text);
  }
  let file: Buffer = Buffer.concat(lines.flatMap((l) => [l, Buffer.from(crlf ? '\r\n' : '\n')]));
  for (const t of tail) file = textOnBytes(file, t);
  return file;
}

/** The byte-level mutations, on a whole file. */
function textOnBytes(bytes: Buffer, op: TextOp): Buffer {
  const len = bytes.length;
  switch (op.op) {
    case 'flip': {
      if (!len) return bytes;
      const b = Buffer.from(bytes);
      b[op.at % len] ^= op.mask || 1;
      return b;
    }
    case 'truncate':
      return bytes.subarray(0, len ? op.at % len : 0);
    case 'insert': {
      const i = op.at % (len + 1);
      return Buffer.concat([bytes.subarray(0, i), Buffer.from(op.bytes), bytes.subarray(i)]);
    }
    case 'delete': {
      const i = len ? op.at % len : 0;
      return Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + op.len)]);
    }
    case 'affix':
      return Buffer.concat([Buffer.from(['', '\ufeff', '\n', ' '][op.prefix % 4]), bytes, Buffer.from(['', 'x', '\n\n', '{'][op.suffix % 4])]);
    case 'badUtf8': {
      const i = op.at % (len + 1);
      return Buffer.concat([bytes.subarray(0, i), Buffer.from([[0xc0, 0xaf], [0xff], [0xed, 0xa0, 0x80]][op.seq % 3]), bytes.subarray(i)]);
    }
    case 'pad':
      return Buffer.concat([bytes, Buffer.alloc(op.over ? 70_000 : 10, 0x20)]);
  }
}

/* ---------- the audit chain an export holds ---------- */

const hubKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const hubSpki = hubKey.publicKey.export({ type: 'spki', format: 'der' });
const signCheckpoint = (payload: AuditCheckpointMessage): string => nodeSign('sha256', canonicalBytes(payload), { key: hubKey.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');

const EVENT_COUNT = 14;
const CHECKPOINTS_AT = [4, 9, 12];

function auditExportLines(): { header: Record<string, unknown>; events: Array<Record<string, unknown>>; checkpoints: StoredCheckpoint[] } {
  const t0 = Date.parse('2026-03-01T10:00:00.000Z');
  const details: AuditDetails[] = [
    { name: 'k-1', algorithm: 'AES-256', kcv: 'a1b2c3' },
    { listenerId: 'site-a', targets: 'hsm:pkcs11', replaced: false },
    { nested: { deep: [1, 2, { x: 'é\u2028' }] }, count: 3, none: null },
    {},
    { code: 'KCV_MISMATCH', expected: '000000', reported: 'ffffff' },
  ];
  const events: Array<Record<string, unknown>> = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= EVENT_COUNT; seq++) {
    const record = {
      seq,
      at: new Date(t0 + seq * 1_000),
      actor: seq % 3 ? 'operator:alice' : 'listener:site-a',
      action: ['key.created', 'distribution.confirmed', 'listener.enrollment_requested'][seq % 3],
      subject: `key:${seq}`,
      details: details[seq % details.length],
    };
    const hash = auditHash(prev, record);
    events.push({ type: 'event', seq, at: record.at.toISOString(), actor: record.actor, action: record.action, subject: record.subject, details: record.details, prevHash: prev, hash });
    prev = hash;
  }
  const checkpoints: StoredCheckpoint[] = [];
  let link: { seq: number; digest: string } = CHECKPOINT_GENESIS;
  for (const seq of CHECKPOINTS_AT) {
    const payload: AuditCheckpointMessage = {
      type: AUDIT_CHECKPOINT_TYPE,
      seq,
      hash: events[seq - 1].hash as string,
      at: new Date(t0 + seq * 1_000 + 500).toISOString(),
      prevSeq: link.seq,
      prevDigest: link.digest,
    };
    const cp: StoredCheckpoint = { seq, hash: payload.hash, signature: signCheckpoint(payload), at: payload.at, prevSeq: payload.prevSeq, prevDigest: payload.prevDigest };
    checkpoints.push(cp);
    link = { seq, digest: checkpointDigest(cp) };
  }
  return { header: { type: 'header', version: AUDIT_EXPORT_VERSION, hubSigningKey: hubSpki.toString('base64'), fingerprint: publicKeyFingerprint(hubSpki) }, events, checkpoints };
}

/**
 * Property-based tests of the files Keyhub reads back (issue 10,
 * "Property-based tests"): the audit export (`keyhub audit verify --file`),
 * a site's witness copy (`--witness`), the listener's journal and its
 * checkpoint store. Fuzzed files, written to a temp dir: lines mutated like
 * the wire messages (duplicate keys, `__proto__`, wrong types, oversize,
 * unicode), lines dropped, repeated, swapped or inserted, CRLF, bytes
 * flipped, files cut. Properties: a reader never crashes and never throws
 * anything but its own error with a stable code; what it keeps is exactly
 * what is valid; a change to an event a checkpoint covers never verifies;
 * the listener's files still take new entries afterwards.
 */
describe('fuzz: audit export, witness copy, listener journal and checkpoint store parsers', function () {
  this.timeout(fuzzTimeout(120_000));
  const guard = new ProcessGuard();
  let dir: TempDir;
  let file = 0;
  const T = { export: 'audit export parser', witness: 'witness copy parser', journal: 'listener journal parser', store: 'listener checkpoint store' };
  const base = auditExportLines();
  const exportValues = (): unknown[] => [base.header, ...base.events, ...base.checkpoints.map((c) => ({ type: 'checkpoint', ...c }))];
  const forgedCheckpoint = JSON.stringify({
    type: 'checkpoint',
    seq: 14,
    hash: base.events[13].hash,
    signature: randomBytes(64).toString('base64'),
    at: new Date().toISOString(),
    prevSeq: 12,
    prevDigest: GENESIS_HASH,
  });
  const extraExportLines = [
    JSON.stringify(base.header),
    forgedCheckpoint,
    '{"type":"event"}',
    '{"type":"checkpoint","seq":1e400,"hash":"","signature":""}',
    '{"type":"__proto__"}',
    JSON.stringify({ ...base.events[0], seq: 2 ** 53 }),
  ];

  const write = (bytes: Buffer | string, name = `f-${++file}.jsonl`): string => {
    const path = join(dir.path, name);
    writeFileSync(path, bytes);
    return path;
  };

  before(async () => {
    guard.install();
    dir = await makeTempDir('fuzz-parsers');
  });

  after(async () => {
    guard.uninstall();
    await dir?.remove();
    for (const t of Object.values(T)) reportStats(t);
  });

  /** Reads and verifies an export as `keyhub audit verify --file` does; a CliError is the one allowed failure. */
  async function readAndVerify(path: string, what: string): Promise<{ ok: boolean; refused?: string }> {
    try {
      const exp = await readAuditExport(path);
      const v = await verifyAuditChain(exp.events(), exp.checkpoints, hubSpki);
      return { ok: v.ok };
    } catch (err) {
      assert.ok(err instanceof CliError, `${what}: ${err instanceof Error ? err.stack : String(err)}`);
      assertStableCode(err.code, what);
      return { ok: false, refused: err.code };
    }
  }

  it('the unmutated export verifies (the base of the fuzzing is sound)', async () => {
    const v = await readAndVerify(
      write(
        Buffer.from(
          exportValues()
            .map((l) => JSON.stringify(l) + '\n')
            .join(''),
        ),
      ),
      'base export',
    );
    assert.deepEqual(v, { ok: true });
  });

  it('audit export: every fuzzed file is read and verified or refused with a stable code, never a crash', async () => {
    const t0 = Date.now();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fileOpArb(extraExportLines), { minLength: 1, maxLength: 4 }), async (ops) => {
        runs++;
        const bytes = buildFile(exportValues(), ops);
        const v = await readAndVerify(write(bytes), `export ${JSON.stringify(ops).slice(0, 500)}`);
        countMessage(T.export, v.refused ?? (v.ok ? 'verified' : 'chain broken'));
        guard.check('audit export');
      }),
      fuzzParams(1500),
    );
    countRuns(T.export, runs, Date.now() - t0);
  });

  it('audit export: a change to an event a checkpoint covers never verifies, however it is encoded (duplicate keys, __proto__, escapes, extra members)', async () => {
    const t0 = Date.now();
    let runs = 0;
    const covered = Math.max(...CHECKPOINTS_AT);
    const normalized = (line: string): string | undefined => {
      try {
        const v = JSON.parse(line) as Record<string, unknown>;
        if (typeof v.at === 'string' && !Number.isNaN(Date.parse(v.at))) v.at = new Date(v.at).toISOString();
        return canonicalBytes(v).toString('utf8');
      } catch {
        return undefined;
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: covered }), fc.array(treeOpArb, { minLength: 1, maxLength: 2 }), async (seq, tree) => {
        runs++;
        const values = exportValues();
        const original = JSON.stringify(values[seq]);
        const mutated = mutateJson(values[seq], { tree, text: [] }).toString('utf8');
        // Only changes of what the event says count; a re-encoding of the same content must verify, and is checked below.
        const same = normalized(mutated) === normalized(original);
        const lines = values.map((v, i) => (i === seq ? mutated : JSON.stringify(v)));
        const v = await readAndVerify(write(lines.join('\n') + '\n'), `event ${seq} mutated by ${JSON.stringify(tree).slice(0, 300)}: ${mutated.slice(0, 300)}`);
        countMessage(T.export, v.refused ?? (v.ok ? 'verified' : 'chain broken'));
        if (same) assert.deepEqual(v, { ok: true }, `a re-encoding of the same event ${seq} verifies: ${mutated.slice(0, 400)}`);
        else assert.equal(v.ok, false, `a changed event ${seq} (covered by the checkpoint at ${covered}) verified: ${mutated.slice(0, 400)}`);
      }),
      fuzzParams(1000),
    );
    countRuns(T.export, runs, Date.now() - t0);
  });

  it("witness copy: every fuzzed site copy is read or refused with a stable code, and a header's key always carries the fingerprint it claims", async () => {
    const t0 = Date.now();
    let runs = 0;
    const header = {
      type: 'witness',
      version: WITNESS_EXPORT_VERSION,
      listenerId: 'site-a',
      hubFingerprint: publicKeyFingerprint(hubSpki),
      hubSigningKey: hubSpki.toString('base64'),
      exportedAt: new Date().toISOString(),
    };
    const lines = (): unknown[] => [
      header,
      ...base.checkpoints.map((c) => ({
        type: 'checkpoint',
        payload: { type: AUDIT_CHECKPOINT_TYPE, seq: c.seq, hash: c.hash, at: c.at, prevSeq: c.prevSeq, prevDigest: c.prevDigest },
        signature: c.signature,
        receivedAt: new Date().toISOString(),
      })),
    ];
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const extra = [JSON.stringify(header), JSON.stringify({ ...header, hubSigningKey: other }), '{"type":"checkpoint"}'];
    await fc.assert(
      fc.asyncProperty(fc.array(fileOpArb(extra), { minLength: 1, maxLength: 4 }), async (ops) => {
        runs++;
        const path = write(buildFile(lines(), ops));
        let outcome = 'read';
        try {
          const w = await readWitnessCopy(path);
          assert.equal(publicKeyFingerprint(w.hubKey), w.fingerprint);
          for (const cp of w.checkpoints) assert.ok(Number.isSafeInteger(cp.seq) && cp.seq > 0, 'checkpoints as the schema allows');
        } catch (err) {
          assert.ok(err instanceof CliError, `witness ${JSON.stringify(ops).slice(0, 300)}: ${err instanceof Error ? err.stack : String(err)}`);
          assertStableCode(err.code, 'witness copy');
          outcome = err.code;
        }
        countMessage(T.witness, outcome);
        guard.check('witness copy');
      }),
      fuzzParams(1500),
    );
    countRuns(T.witness, runs, Date.now() - t0);
  });

  it('listener journal: whatever the file holds, it opens, keeps exactly the valid entries (the last one per package), and still takes and keeps new ones', async () => {
    const t0 = Date.now();
    let runs = 0;
    const entry = (sequence: number): JournalEntry => ({
      packageId: randomUUID(),
      sequence,
      // A JetStream stream sequence: small, whatever the package sequence (which a damaged file may push near 2^53).
      streamSeq: (sequence % 1000) + 100,
      outcome: 'imported',
      receipt: randomBytes(48).toString('base64'),
      sha256: randomBytes(32).toString('hex'),
    });
    /** The journal's rule for a line, written out here as the specification to compare with. */
    const valid = (v: unknown): v is JournalEntry => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      const e = v as Record<string, unknown>;
      return (
        typeof e.packageId === 'string' &&
        e.packageId.length <= 64 &&
        Number.isSafeInteger(e.sequence) &&
        (e.sequence as number) > 0 &&
        Number.isSafeInteger(e.streamSeq) &&
        typeof e.outcome === 'string' &&
        typeof e.receipt === 'string' &&
        (e.sha256 === undefined || (typeof e.sha256 === 'string' && /^[0-9a-f]{64}$/.test(e.sha256)))
      );
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fileOpArb(['{"packageId":"__proto__","sequence":1,"streamSeq":1,"outcome":"x","receipt":""}', '{"packageId":"p","sequence":9007199254740991,"streamSeq":0,"outcome":"x","receipt":""}']),
          { minLength: 1, maxLength: 5 },
        ),
        async (ops) => {
          runs++;
          const home = await makeTempDir('fuzz-journal');
          try {
            const bytes = buildFile(
              Array.from({ length: 8 }, (_, i) => entry(i + 1)),
              ops,
            );
            writeFileSync(join(home.path, 'journal.jsonl'), bytes);
            const expected = new Map<string, JournalEntry>();
            for (const line of bytes.toString('utf8').split('\n')) {
              if (!line.trim()) continue;
              let v: unknown;
              try {
                v = JSON.parse(line);
              } catch {
                continue;
              }
              // The journal keeps an entry's own fields only; whatever else the line carried is dropped.
              if (valid(v))
                expected.set(v.packageId, {
                  packageId: v.packageId,
                  sequence: v.sequence,
                  streamSeq: v.streamSeq,
                  outcome: v.outcome,
                  receipt: v.receipt,
                  ...(v.sha256 !== undefined ? { sha256: v.sha256 } : {}),
                });
            }
            const what = `journal ${JSON.stringify(ops).slice(0, 400)}`;
            let j: Journal;
            try {
              j = Journal.open(home.path, { syncMs: 60_000 });
            } catch (err) {
              assert.fail(`${what}: the journal did not open: ${err instanceof Error ? err.stack : String(err)}`);
            }
            countMessage(T.journal, `${expected.size} valid entries`);
            try {
              assert.equal(j.size, expected.size, `${what}: keeps exactly the valid entries`);
              for (const [id, e] of expected) assert.deepEqual(j.get(id), e, `${what}: entry ${id}`);
              const last = Math.max(0, ...[...expected.values()].map((e) => e.sequence));
              assert.equal(j.lastSequence, last, `${what}: the replay window starts at the highest valid sequence`);
              // It still takes a new package, and keeps it across a reopen.
              if (last < Number.MAX_SAFE_INTEGER) {
                const next = entry(last + 1);
                assert.ok(j.reserve(next.sequence, next.packageId), `${what}: a new sequence is taken`);
                j.record(next);
                expected.set(next.packageId, next);
              }
            } finally {
              j.close();
            }
            const again = Journal.open(home.path, { syncMs: 60_000 });
            try {
              assert.equal(again.size, expected.size, `${what}: reopened, the same entries`);
              // Compared as JSON: the file holds numbers as JSON writes them (-0 comes back as 0).
              const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v ?? null));
              for (const [id, e] of expected) assert.deepEqual(json(again.get(id)), json(e));
            } finally {
              again.close();
            }
          } finally {
            await home.remove();
          }
          guard.check('journal');
        },
      ),
      fuzzParams(1200),
    );
    countRuns(T.journal, runs, Date.now() - t0);
  });

  it('listener checkpoint store: whatever the file holds, it opens, keeps the schema-valid lines, counts the others, and still stores, deduplicates and compacts', async () => {
    const t0 = Date.now();
    let runs = 0;
    let seq = 100;
    const line = (s: number) => ({
      type: 'checkpoint',
      payload: { type: AUDIT_CHECKPOINT_TYPE, seq: s, hash: randomBytes(32).toString('hex'), at: new Date().toISOString(), prevSeq: s - 1, prevDigest: randomBytes(32).toString('hex') },
      signature: randomBytes(64).toString('base64'),
      receivedAt: new Date().toISOString(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fileOpArb([JSON.stringify(line(1)), '{"type":"checkpoint","payload":{"__proto__":{"seq":1}}}']), { minLength: 1, maxLength: 5 }),
        fc.constantFrom(2, 4, 2000),
        async (ops, max) => {
          runs++;
          const home = await makeTempDir('fuzz-store');
          try {
            const bytes = buildFile(
              Array.from({ length: 6 }, () => line(++seq)),
              ops,
            );
            writeFileSync(join(home.path, 'checkpoints.jsonl'), bytes);
            let validLines = 0;
            let invalid = 0;
            for (const text of bytes.toString('utf8').split('\n')) {
              if (text.trim() === '') continue;
              let ok = false;
              try {
                ok = witnessCheckpointLine.safeParse(JSON.parse(text)).success;
              } catch {
                ok = false;
              }
              if (ok) validLines++;
              else invalid++;
            }
            const what = `store ${JSON.stringify(ops).slice(0, 400)}`;
            let store: CheckpointStore;
            try {
              store = CheckpointStore.open(home.path, max);
            } catch (err) {
              assert.fail(`${what}: the store did not open: ${err instanceof Error ? err.stack : String(err)}`);
            }
            countMessage(T.store, invalid ? 'skipped lines' : 'all kept');
            assert.equal(store.size, validLines, `${what}: keeps the valid lines`);
            assert.equal(store.skipped, invalid, `${what}: counts the others`);
            for (const e of store.entries()) assert.ok(witnessCheckpointLine.safeParse(e).success);
            // The newest checkpoint there can be, so that a compaction keeps it.
            const fresh = line(Number.MAX_SAFE_INTEGER) as Parameters<CheckpointStore['add']>[0];
            assert.equal(store.add(fresh), 'stored', `${what}: a new checkpoint is stored`);
            assert.equal(store.add(structuredClone(fresh)), 'present', `${what}: the same one again is present`);
            const expected = validLines + 1 > 2 * max ? max : validLines + 1;
            assert.equal(store.size, expected, `${what}: ${validLines + 1} checkpoints, compacted to ${max} past ${2 * max}`);
            const reopened = CheckpointStore.open(home.path, max);
            assert.equal(reopened.size, expected, `${what}: reopened, the same checkpoints`);
            assert.ok(reopened.atSeq(fresh.payload.seq), `${what}: the new checkpoint is in the file`);
            assert.equal(readFileSync(store.path, 'utf8').endsWith('\n'), true);
          } finally {
            await home.remove();
          }
          guard.check('checkpoint store');
        },
      ),
      fuzzParams(1200),
    );
    countRuns(T.store, runs, Date.now() - t0);
  });
});
