import { strict as assert } from 'node:assert';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Client } from 'pg';
import { AUDIT_CHECKPOINT_TYPE, auditHash, canonicalBytes, type ExportRange } from '@keyhub/protocol';
import { Deployment } from '../harness/deployment';

/**
 * Tampering with a real ledger: one deployment (real PostgreSQL, the real
 * hub, a real listener that keeps the hub's signed checkpoints), an
 * attacker with the owner's database rights, and the real `keyhub` CLI.
 * Each case tampers the audit table by SQL, is checked online (through the
 * API, verified in the CLI) and offline (an export verified with no hub
 * reachable), must be named with its first bad event and its kind, and is
 * undone from a snapshot before the next.
 */
describe('audit tampering on a real ledger: online and offline verification name the first bad event and the kind', function () {
  let d: Deployment;
  let pg: Client;
  let witnessFile = '';
  let files = 0;
  const site = 'site-t';
  /** Two checkpoints, both held by the site, with events between and after them. */
  let c1 = 0;
  let c2 = 0;
  let head = 0;

  interface Verdict {
    code: number | null;
    out: {
      ok?: boolean;
      firstBad?: { seq: number; id: string | null };
      kind?: string;
      detail?: string;
      range?: ExportRange;
      events?: number;
      error?: { code: string; details?: Record<string, unknown> };
    };
    text: string;
  }

  const parse = (r: { code: number | null; stdout: string; stderr: string }): Verdict => ({ code: r.code, out: JSON.parse(r.stdout || '{}') as Verdict['out'], text: r.stdout + r.stderr });

  const withWitness = (witness: boolean): string[] => ['--fingerprint', d.hubFingerprint, ...(witness ? ['--witness', witnessFile] : [])];

  const online = async (witness = false, range: string[] = []): Promise<Verdict> => parse(await d.keyhub(['--json', 'audit', 'verify', ...withWitness(witness), ...range], { as: 'auditor' }));

  /** `keyhub audit export` through the API, then `audit verify --file` with the hub out of reach. */
  const offline = async (witness = false, range: string[] = []): Promise<Verdict> => {
    const file = path.join(d.dir.path, `ledger-${++files}.jsonl`);
    const exported = await d.keyhub(['--json', 'audit', 'export', '--out', file, ...range], { as: 'auditor' });
    assert.equal(exported.code, 0, exported.stdout + exported.stderr);
    const noHub = { KEYHUB_ADDR: 'https://127.0.0.1:9', KEYHUB_TOKEN: '' };
    return parse(await d.keyhub(['--json', 'audit', 'verify', '--file', file, ...withWitness(witness)], { as: 'auditor', env: noHub }));
  };

  /** Both ways must agree: exit code 5, AUDIT_CHAIN_BROKEN, the kind, the event and (where known) its hash. */
  const expectTampering = async (kind: string, seq: number, id: string | null | undefined, witness = false): Promise<void> => {
    const [on, off] = await Promise.all([online(witness), offline(witness)]);
    for (const [way, v] of [
      ['online', on],
      ['offline', off],
    ] as const) {
      assert.equal(v.code, 5, `${way}: ${v.text}`);
      assert.equal(v.out.ok, false, `${way}: ${v.text}`);
      assert.equal(v.out.error?.code, 'AUDIT_CHAIN_BROKEN', `${way}: ${v.text}`);
      assert.equal(v.out.kind, kind, `${way}: ${v.text}`);
      assert.equal(v.out.firstBad?.seq, seq, `${way}: ${v.text}`);
      if (id !== undefined) assert.equal(v.out.firstBad?.id, id, `${way}: ${v.text}`);
    }
  };

  const expectIntact = async (witness = false): Promise<void> => {
    for (const v of await Promise.all([online(witness), offline(witness)])) {
      assert.equal(v.code, 0, v.text);
      assert.equal(v.out.ok, true, v.text);
    }
  };

  /** As the owner, with the append-only triggers off: what someone with owner rights can do. */
  const asOwner = async (...statements: Array<[string, unknown[]?]>): Promise<void> => {
    await pg.query('BEGIN');
    try {
      await pg.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
      await pg.query('ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_no_update');
      for (const [sql, params] of statements) await pg.query(sql, params);
      await pg.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
      await pg.query('ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_no_update');
      await pg.query('COMMIT');
    } catch (err) {
      await pg.query('ROLLBACK');
      throw err;
    }
  };

  const restore = (): Promise<void> =>
    asOwner(
      ['DELETE FROM audit_events'],
      ['INSERT INTO audit_events SELECT * FROM saved_events'],
      ['DELETE FROM audit_checkpoints'],
      ['INSERT INTO audit_checkpoints SELECT * FROM saved_checkpoints'],
    );

  const hashOf = async (seq: number): Promise<string> => (await pg.query('SELECT hash FROM saved_events WHERE seq = $1', [seq])).rows[0].hash as string;

  const checkpointNow = async (): Promise<number> => {
    const r = await d.keyhub(['--json', 'audit', 'checkpoint'], { as: 'admin' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { checkpoint } = JSON.parse(r.stdout) as { checkpoint: { seq: number } | null };
    assert.ok(checkpoint, 'a new checkpoint');
    return checkpoint.seq;
  };

  const waitForWitness = async (seq: number): Promise<void> => {
    const file = path.join(d.site(site).home, 'checkpoints.jsonl');
    for (const deadline = Date.now() + 30_000; ;) {
      const text = await readFile(file, 'utf8').catch(() => '');
      if (text.split('\n').some((l) => l && (JSON.parse(l) as { payload: { seq: number } }).payload.seq === seq)) return;
      if (Date.now() > deadline) throw new Error(`site ${site} did not witness the checkpoint at event ${seq}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const createKeys = async (...names: string[]): Promise<void> => {
    for (const n of names) assert.equal((await d.keyhub(['key', 'create', n, '--alg', 'AES-256'])).code, 0);
  };

  before(async function () {
    this.timeout(240_000);
    // Checkpoints only when the test asks: the scheduled job must not sign between snapshot and restore.
    d = await Deployment.create([site], { checkpointEverySeconds: 3600 });
    await d.initHub();
    await d.startHub();
    await d.enrollListener(site);
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    await createKeys('tamper-1');
    c1 = await checkpointNow();
    await createKeys('tamper-2', 'tamper-3', 'tamper-4', 'tamper-5');
    c2 = await checkpointNow();
    await createKeys('tamper-6');
    await Promise.all([waitForWitness(c1), waitForWitness(c2)]);
    head = (await pg.query('SELECT max(seq)::int AS head FROM audit_events')).rows[0].head as number;
    assert.ok(c2 - c1 >= 4 && head > c2, `events between and after the checkpoints (${c1}, ${c2}, ${head})`);
    witnessFile = path.join(d.dir.path, 'witness.jsonl');
    const w = await d.listenerCli(site, ['--json', 'checkpoints', 'export', '--out', witnessFile]);
    assert.equal(w.code, 0, w.stdout + w.stderr);
    await pg.query('CREATE TEMP TABLE saved_events AS SELECT * FROM audit_events');
    await pg.query('CREATE TEMP TABLE saved_checkpoints AS SELECT * FROM audit_checkpoints');
  });

  afterEach(async function () {
    this.timeout(30_000);
    if (pg) await restore();
  });

  after(async function () {
    this.timeout(60_000);
    await pg?.end().catch(() => undefined);
    await d?.cleanup();
  });

  it('the untouched ledger verifies online and offline, whole, against the site copy, and as a --from/--to range', async function () {
    this.timeout(60_000);
    await expectIntact();
    await expectIntact(true);
    const k = c1 + 2;
    const onlineRange = await online(false, ['--from', String(k), '--to', String(k)]);
    assert.equal(onlineRange.code, 0, onlineRange.text);
    const r = await offline(true, ['--from', String(k), '--to', String(k + 1)]);
    assert.equal(r.code, 0, r.text);
    assert.deepEqual(r.out.range && { from: r.out.range.from, to: r.out.range.to, start: r.out.range.start, toHead: r.out.range.toHead }, { from: k, to: k + 1, start: c1, toHead: false });
    assert.equal(r.out.events, c2 - c1 + 1, 'from the checkpoint before the range to the one after it');
    // By time: from the date of event k to now covers k..head, anchored at c1.
    const at = (await pg.query('SELECT at FROM audit_events WHERE seq = $1', [k])).rows[0].at as Date;
    const byTime = await offline(false, ['--from', at.toISOString(), '--to', new Date(Date.now() + 60_000).toISOString()]);
    assert.equal(byTime.code, 0, byTime.text);
    assert.equal(byTime.out.range?.from, k);
    assert.equal(byTime.out.range?.toHead, true);
  });

  it('a changed field is named: changed, at that event', async function () {
    this.timeout(60_000);
    const k = c1 + 2;
    await asOwner([`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [k]]);
    await expectTampering('changed', k, await hashOf(k));
    // A range export around it catches it too.
    const r = await offline(false, ['--from', String(k), '--to', String(k)]);
    assert.deepEqual([r.code, r.out.kind, r.out.firstBad?.seq], [5, 'changed', k], r.text);
  });

  it('a deleted event is named: deleted, with the hash its successor still links to', async function () {
    this.timeout(60_000);
    const k = c1 + 2;
    await asOwner(['DELETE FROM audit_events WHERE seq = $1', [k]]);
    await expectTampering('deleted', k, await hashOf(k));
  });

  it('an inserted event, well formed and linked, the later events renumbered: inserted, at its place', async function () {
    this.timeout(60_000);
    const k = c1 + 2;
    const prev = await hashOf(k - 1);
    const forged = { seq: k, at: new Date(), actor: 'mallory', action: 'key.created', subject: 'key:backdoor', details: { version: 1 } };
    const hash = auditHash(prev, forged);
    await asOwner(
      ['UPDATE audit_events SET seq = -seq - 1 WHERE seq >= $1', [k]],
      ['UPDATE audit_events SET seq = -seq WHERE seq < 0'],
      [
        'INSERT INTO audit_events (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
        [k, forged.at, forged.actor, forged.action, forged.subject, forged.details, prev, hash],
      ],
    );
    await expectTampering('inserted', k, hash);
  });

  it('two events swapped: reordered, at the first of them', async function () {
    this.timeout(60_000);
    const k = c1 + 2;
    await asOwner(
      ['UPDATE audit_events SET seq = -1 WHERE seq = $1', [k]],
      ['UPDATE audit_events SET seq = $1 WHERE seq = $2', [k, k + 1]],
      ['UPDATE audit_events SET seq = $1 WHERE seq = -1', [k + 1]],
    );
    await expectTampering('reordered', k, await hashOf(k + 1));
  });

  it("a truncation back past a checkpoint the site holds: truncated, by its copy when the hub's checkpoints went too", async function () {
    this.timeout(60_000);
    const cut = c1 + 1;
    // Events cut, the checkpoint left behind: the ledger itself shows it.
    await asOwner(['DELETE FROM audit_events WHERE seq > $1', [cut]]);
    await expectTampering('truncated', cut + 1, undefined);
    // Its checkpoints removed too: consistent on its own (what a witness is for), caught by the site's copy.
    await asOwner(['DELETE FROM audit_checkpoints WHERE seq > $1', [cut]]);
    const alone = await online();
    assert.equal(alone.out.ok, true, alone.text);
    await expectTampering('truncated', cut + 1, undefined, true);
  });

  it('a checkpoint whose signature is not the hub key: forged, at its event', async function () {
    this.timeout(60_000);
    const mallory = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const row = (await pg.query('SELECT seq::int, hash, at, prev_seq::int AS "prevSeq", prev_digest AS "prevDigest" FROM audit_checkpoints WHERE seq = $1', [c2])).rows[0] as {
      seq: number;
      hash: string;
      at: Date;
      prevSeq: number;
      prevDigest: string;
    };
    const payload = { type: AUDIT_CHECKPOINT_TYPE, seq: row.seq, hash: row.hash, at: row.at.toISOString(), prevSeq: row.prevSeq, prevDigest: row.prevDigest };
    const signature = sign('sha256', canonicalBytes(payload), { key: mallory.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');
    await asOwner(['UPDATE audit_checkpoints SET signature = $2 WHERE seq = $1', [c2, signature]]);
    await expectTampering('forged', c2, await hashOf(c2));
  });
});
