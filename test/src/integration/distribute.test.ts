import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { decodeEnvelope, verifyEnvelope, type KeyPackage, type SignedEnvelope } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { hubConfigSchema } from '@keyhub/hub/dist/config';
import { verifyStoredAudit } from '@keyhub/hub/dist/operations/audit/verify-stored-audit';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { allocateSequences } from '@keyhub/hub/dist/store/queries/listeners';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { TOKENS } from '@keyhub/hub/dist/tokens';
import { createHubFixture, insertActiveListeners, listenerIds, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, mapPool, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';
import { makeTempDir, run } from '../env';

/**
 * Python's `cryptography` and hashlib check an ES256-MERKLE envelope on their
 * own: RFC 8785 bytes of the payload (json.dumps with sorted keys and no
 * spaces is RFC 8785 for these payloads: strings, integers, booleans), the
 * RFC 9162 leaf and audit path, and the ECDSA P-256 signature over the batch
 * statement under the hub's public key.
 */
const PY_VERIFY_BATCH = `
import sys, json, base64, hashlib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
spki = base64.b64decode(sys.argv[2])
jcs = lambda v: json.dumps(v, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()
def check(env):
  sig = env['signature']; b = sig['batch']
  r = hashlib.sha256(b'\\x00' + jcs(env['payload'])).digest()
  fn, sn = b['index'], b['size'] - 1
  for p in [base64.b64decode(x) for x in b['path']]:
    assert sn > 0
    if fn % 2 == 1 or fn == sn:
      r = hashlib.sha256(b'\\x01' + p + r).digest()
      while fn % 2 == 0 and fn != 0:
        fn >>= 1; sn >>= 1
    else:
      r = hashlib.sha256(b'\\x01' + r + p).digest()
    fn >>= 1; sn >>= 1
  assert sn == 0
  statement = jcs({'type': 'keyhub.v1.signed_batch', 'root': base64.b64encode(r).decode(), 'size': b['size']})
  raw = base64.b64decode(sig['value'])
  der = utils.encode_dss_signature(int.from_bytes(raw[:32], 'big'), int.from_bytes(raw[32:], 'big'))
  serialization.load_der_public_key(spki).verify(der, statement, ec.ECDSA(hashes.SHA256()))
envs = json.load(open(sys.argv[1]))
for e in envs: check(e)
print(len(envs), 'ok')
`;

describe('distribute: chunked pipeline, batch signatures, concurrent calls, partial failure', function () {
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let distribute: Distribute;
  const sites = listenerIds(3, 'dist');
  const KEYS = 122;
  const CHUNK = 50;

  before(async function () {
    this.timeout(120_000);
    const stage = { cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext };
    fx = await createHubFixture(stage, { nats: false });
    await insertActiveListeners(fx, sites);
    // Small chunks, so that one call spans several transactions and batch signatures.
    fx.rt.container.register(TOKENS.config, { useValue: hubConfigSchema.parse({ ...fx.config, delivery: { ...fx.config.delivery, issueBatch: CHUNK } }) });
    distribute = fx.rt.container.resolve(Distribute);
    const createKey = fx.rt.container.resolve(CreateKey);
    await mapPool(
      Array.from({ length: KEYS }, (_, i) => `dist-${String(i).padStart(3, '0')}`),
      4,
      (name) => createKey.execute({ name, algorithm: 'AES-256', actor: 'test' }),
    );
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const outbox = async (): Promise<Array<SignedEnvelope<KeyPackage>>> => {
    const rows: Array<{ payload: Buffer }> = await fx.rt.ds.query("SELECT payload FROM outbox WHERE subject LIKE 'keyhub.v1.to.%.package' ORDER BY id");
    return rows.map((r) => {
      const d = decodeEnvelope(r.payload);
      assert.ok(d.ok, 'outbox payload decodes');
      return d.envelope as SignedEnvelope<KeyPackage>;
    });
  };

  it('queues one call in chunks: every package batch-signed and verifiable alone, sequences dense, one audit event per chunk', async function () {
    this.timeout(120_000);
    const keys = Array.from({ length: 40 }, (_, i) => ({ name: `dist-${String(i).padStart(3, '0')}` }));
    const result = await distribute.execute({ keys, to: 'all', actor: 'alice' });
    assert.equal(result.queued.length, 40 * sites.length);
    assert.equal(result.skipped.length, 0);
    // Chunks commit two at a time, yet the result lists the distributions in request order.
    assert.deepEqual(
      result.queued.map((q) => `${q.key}/${q.listenerId}`),
      keys.flatMap((k) => [...sites].sort().map((l) => `${k.name}/${l}`)),
    );

    const envelopes = await outbox();
    assert.equal(envelopes.length, 120);
    const spki = fx.keyring.signingSpki;
    const batches = new Map<string, number>();
    for (const e of envelopes) {
      assert.equal(e.signature.alg, 'ES256-MERKLE');
      assert.ok(verifyEnvelope(e, spki), 'each package verifies on its own');
      if (e.signature.alg === 'ES256-MERKLE') {
        assert.ok(e.signature.batch.size <= CHUNK);
        batches.set(e.signature.value, e.signature.batch.size);
      }
      // Any change to the payload breaks it, also with the batch already verified once.
      assert.equal(verifyEnvelope({ ...e, payload: { ...e.payload, target: 'other' } }, spki), false);
    }
    assert.equal(batches.size, Math.ceil(120 / CHUNK), 'one HSM signature per chunk');
    assert.equal(
      [...batches.values()].reduce((a, b) => a + b, 0),
      120,
    );
    // A proof moved to another package of the same batch fails.
    const [a, b] = envelopes;
    assert.equal(verifyEnvelope({ payload: a.payload, signature: b.signature }, spki), false);

    // Per listener, sequences 1..40 each used once.
    for (const site of sites) {
      const seqs = envelopes
        .filter((e) => e.payload.listenerId === site)
        .map((e) => e.payload.sequence)
        .sort((x, y) => x - y);
      assert.deepEqual(
        seqs,
        Array.from({ length: 40 }, (_, i) => i + 1),
      );
    }

    // Python checks every one of them independently (batches of 50, 50 and 20: full and ragged trees).
    const dir = await makeTempDir('batch');
    const file = path.join(dir.path, 'envelopes.json');
    await writeFile(file, JSON.stringify(envelopes));
    const r = await run('python3', ['-c', PY_VERIFY_BATCH, file, spki.toString('base64')]);
    await dir.remove();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '120 ok');

    const events: Array<{ subject: string; actor: string; details: { count: number; distributions: Array<{ id: string }> } }> = await fx.rt.ds.query(
      "SELECT subject, actor, details FROM audit_events WHERE action = 'distribution.queued' ORDER BY seq",
    );
    assert.equal(events.length, Math.ceil(120 / CHUNK));
    assert.equal(new Set(events.map((e) => e.subject)).size, 1, 'all chunks name the same request');
    assert.match(events[0].subject, /^request:[0-9a-f-]{36}$/);
    assert.ok(events.every((e) => e.actor === 'alice'));
    const listed = events.flatMap((e) => e.details.distributions.map((d) => d.id));
    assert.deepEqual(new Set(listed), new Set(result.queued.map((q) => q.distributionId)));
    assert.equal(listed.length, 120);
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok);
  });

  it('two concurrent calls for the same keys and sites queue each distribution once', async function () {
    this.timeout(120_000);
    const keys = Array.from({ length: 40 }, (_, i) => ({ name: `dist-${String(40 + i).padStart(3, '0')}` }));
    const [r1, r2] = await Promise.all([distribute.execute({ keys, to: 'all', actor: 'bob' }), distribute.execute({ keys, to: 'all', actor: 'carol' })]);
    const ids1 = new Set(r1.queued.map((q) => q.distributionId));
    const ids2 = new Set(r2.queued.map((q) => q.distributionId));
    assert.equal(ids1.size + ids2.size, 120, `queued ${ids1.size} + ${ids2.size}`);
    assert.equal(r1.queued.length + r1.skipped.length, 120);
    assert.equal(r2.queued.length + r2.skipped.length, 120);
    const [{ n }] = await fx.rt.ds.query("SELECT count(*)::int AS n FROM distributions WHERE created_by IN ('bob', 'carol')");
    assert.equal(n, 120);
    // Only the winners' packages reach the outbox.
    const [{ o }] = await fx.rt.ds.query(
      "SELECT count(*)::int AS o FROM outbox o JOIN distributions d ON d.id = o.distribution_id WHERE d.created_by IN ('bob', 'carol') AND d.last_package_id::text = o.msg_id",
    );
    const [{ all }] = await fx.rt.ds.query("SELECT count(*)::int AS all FROM outbox o JOIN distributions d ON d.id = o.distribution_id WHERE d.created_by IN ('bob', 'carol')");
    assert.equal(o, 120);
    assert.equal(all, 120);
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok);
  });

  it('a distribution another transaction queues while the call runs is skipped, and its package never reaches the outbox', async function () {
    this.timeout(60_000);
    // Not yet committed when the call reads what exists, so the call plans it; its INSERT then waits
    // on the other transaction and, after the commit, finds the row taken.
    const [{ id: kv }] = await fx.rt.ds.query("SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'dist-120'");
    const other = fx.rt.ds.createQueryRunner();
    await other.connect();
    const theirs = randomUUID();
    try {
      await other.startTransaction();
      await other.query(
        `INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, 'hsm', 'queued', 1, 'eve', now(), now())`,
        [theirs, kv, sites[0]],
      );
      const call = distribute.execute({ keys: [{ name: 'dist-120' }, { name: 'dist-121' }], to: [{ listenerId: sites[0] }], actor: 'frank' });
      await new Promise((r) => setTimeout(r, 500));
      await other.commitTransaction();
      const r = await call;
      assert.deepEqual(
        r.queued.map((q) => q.key),
        ['dist-121'],
      );
      assert.deepEqual(
        r.skipped.map((q) => [q.key, q.state]),
        [['dist-120', 'queued elsewhere']],
      );
    } finally {
      if (other.isTransactionActive) await other.rollbackTransaction();
      await other.release();
    }
    const [{ n }] = await fx.rt.ds.query('SELECT count(*)::int AS n FROM outbox o JOIN distributions d ON d.id = o.distribution_id WHERE d.key_version_id = $1', [kv]);
    assert.equal(n, 0, 'no package for the distribution the other transaction owns');
    const [{ m }] = await fx.rt.ds.query("SELECT count(*)::int AS m FROM distributions WHERE created_by = 'frank'");
    assert.equal(m, 1);
  });

  it('a chunk that fails leaves the chunks committed queued, says how many, and the same call again queues the rest', async function () {
    this.timeout(120_000);
    const keys = Array.from({ length: 40 }, (_, i) => ({ name: `dist-${String(80 + i).padStart(3, '0')}` }));
    // The database refuses distributions of one key in the middle of the call (the 4th chunk of 50 with 3 sites).
    const [{ id: poisoned }] = await fx.rt.ds.query("SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'dist-110'");
    await fx.asOwner(`CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.key_version_id = '${poisoned}' THEN RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END $$`);
    await fx.asOwner('CREATE TRIGGER test_refuse BEFORE INSERT ON distributions FOR EACH ROW EXECUTE FUNCTION test_refuse()');
    const err = await distribute.execute({ keys, to: 'all', actor: 'dave' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(KeyhubError.is(err), `expected a KeyhubError, got ${String(err)}`);
    const queuedBefore = Number(err.details?.queued);
    // Key 110 is the 31st of this call: its rows are 91..93 of 120, in the 2nd chunk of 50 (rows
    // 51..100). Two chunks are stored at a time, so the 3rd (rows 101..120) may have committed
    // alongside the 1st; the 2nd never does, and the error counts exactly what did.
    assert.ok(queuedBefore === 50 || queuedBefore === 70, `queued ${queuedBefore}`);
    assert.equal(err.details?.requested, 120);
    assert.match(err.message, new RegExp(`${queuedBefore} of 120 distributions were queued before this failure`));
    const [{ n }] = await fx.rt.ds.query("SELECT count(*)::int AS n FROM distributions WHERE created_by = 'dave'");
    assert.equal(n, queuedBefore);
    const [{ p }] = await fx.rt.ds.query("SELECT count(*)::int AS p FROM packages k JOIN distributions d ON d.id = k.distribution_id WHERE d.created_by = 'dave'");
    assert.equal(p, queuedBefore, 'a package for every distribution committed, none for the failed chunk');
    const [{ chunk2 }] = await fx.rt.ds.query(
      `SELECT count(*)::int AS chunk2 FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE d.created_by = 'dave' AND k.name BETWEEN 'dist-097' AND 'dist-112'`,
    );
    assert.equal(chunk2, 0, 'nothing of the failed chunk was committed');

    await fx.asOwner('DROP TRIGGER test_refuse ON distributions');
    const again = await distribute.execute({ keys, to: 'all', actor: 'dave' });
    assert.equal(again.queued.length, 120 - queuedBefore);
    assert.equal(again.skipped.length, queuedBefore);
    const [{ m }] = await fx.rt.ds.query("SELECT count(*)::int AS m FROM distributions WHERE created_by = 'dave'");
    assert.equal(m, 120);
    // Sequence blocks of the failed chunks are gaps, not reuse: still unique per listener.
    const [{ dup }] = await fx.rt.ds.query('SELECT count(*)::int AS dup FROM (SELECT listener_id, sequence FROM packages GROUP BY 1, 2 HAVING count(*) > 1) x');
    assert.equal(dup, 0);
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok);
  });

  it('sequence blocks taken by concurrent transactions, in any listener order, never overlap and never deadlock; a first block starts at 1', async function () {
    this.timeout(60_000);
    // Many listeners, so that each statement takes its row locks over several milliseconds and
    // concurrent ones overlap: taken in the order given, they deadlock (checked by removing the sort).
    const many = Array.from({ length: 3000 }, (_, i) => `seq-${String(i).padStart(4, '0')}`);
    await fx.rt.ds.query(
      `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, requested_at)
       SELECT id, 'active', '\\x00', '\\x00', 'sha1', md5(id), '[]'::jsonb, now() FROM unnest($1::text[]) AS id`,
      [many],
    );
    const [{ before }] = await fx.rt.ds.query('SELECT count(*)::int AS before FROM listener_sequences WHERE listener_id = ANY($1)', [many]);
    assert.equal(before, 0, 'new listeners have no counter row yet');
    // Eight transactions at once, each asking for t+1 numbers per listener, listed in its own
    // order (forwards, backwards, interleaved), each holding its locks for a moment as a chunk would.
    const orders = [(a: string[]) => a, (a: string[]) => [...a].reverse(), (a: string[]) => [...a.filter((_, i) => i % 2), ...a.filter((_, i) => !(i % 2)).reverse()]];
    const blocks = await Promise.all(
      Array.from({ length: 8 }, (_, t) =>
        fx.rt.ds.transaction(async (m) => {
          const counts = new Map(orders[t % orders.length](many).map((id) => [id, t + 1]));
          const last = await allocateSequences(m, counts);
          await new Promise((r) => setTimeout(r, 20));
          return new Map([...last].map(([id, before]) => [id, { from: before + 1, to: before + counts.get(id)! }]));
        }),
      ),
    );
    for (const id of many) {
      const mine = blocks.map((b) => b.get(id)!).sort((a, b) => a.from - b.from);
      assert.equal(mine[0].from, 1, `${id}: the first block starts at 1`);
      for (let i = 1; i < mine.length; i++) assert.equal(mine[i].from, mine[i - 1].to + 1, `${id}: blocks are disjoint and leave no gap`);
      assert.equal(mine[mine.length - 1].to, 36, `${id}: 1+2+...+8 numbers handed out`);
    }
  });
});
