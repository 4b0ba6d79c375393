import { strict as assert } from 'node:assert';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { Client } from 'pg';
import { AUDIT_CHECKPOINT_TYPE, auditHash, canonicalBytes, checkpointDigest, GENESIS_HASH, publicKeyFingerprint, type StoredCheckpoint } from '@keyhub/protocol';
import { Deployment } from '../harness/deployment';

/**
 * Sites as witnesses of the hub's history, on the real deployment: the hub
 * sends each signed checkpoint to every active listener, which verifies it
 * under its pinned hub key and keeps it. An attacker with owner rights on
 * the database then cuts the history back, or rewrites it, replaces the hub
 * signing key in hub_identity and re-signs every checkpoint with a key of
 * their own: the forged database is consistent under its own key, and
 * `keyhub audit verify --witness <site copy>` still catches it.
 */
describe('audit witnesses: listeners keep signed checkpoints; a site copy catches a rewritten or truncated history', function () {
  let d: Deployment;
  let pg: Client;
  let witnessFile = '';
  let exports = 0;
  const site = 'site-w';
  const attacker = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const attackerSpki = attacker.publicKey.export({ type: 'spki', format: 'der' });
  const attackerFp = publicKeyFingerprint(attackerSpki);

  interface Verdict {
    code: number | null;
    out: {
      ok?: boolean;
      witnessed?: { checkpoints: number; lastSeq: number };
      sites?: string[];
      trust?: string;
      unwitnessed?: number;
      error?: { code: string; message: string; details?: Record<string, unknown> };
    };
    text: string;
  }

  const verify = async (args: string[]): Promise<Verdict> => {
    const r = await d.keyhub(['--json', 'audit', 'verify', ...args], { as: 'auditor' });
    return { code: r.code, out: JSON.parse(r.stdout || '{}') as Verdict['out'], text: r.stdout + r.stderr };
  };

  const checkpointNow = async (): Promise<{ seq: number; prevSeq: number }> => {
    const r = await d.keyhub(['--json', 'audit', 'checkpoint'], { as: 'admin' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { checkpoint } = JSON.parse(r.stdout) as { checkpoint: { seq: number; prevSeq: number } | null };
    if (checkpoint) return checkpoint;
    // The scheduled job got there first: the newest checkpoint covers the head.
    const [row] = (await pg.query('SELECT seq::int, prev_seq::int AS "prevSeq" FROM audit_checkpoints ORDER BY seq DESC LIMIT 1')).rows;
    return row as { seq: number; prevSeq: number };
  };

  const witnessPath = (): string => path.join(d.site(site).home, 'checkpoints.jsonl');

  const waitForWitness = async (seq: number): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const text = await readFile(witnessPath(), 'utf8').catch(() => '');
      const seqs = text
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { payload: { seq: number } }).payload.seq);
      if (seqs.includes(seq)) return;
      if (Date.now() > deadline) throw new Error(`site ${site} did not witness the checkpoint at event ${seq} (it holds ${seqs.join(', ') || 'none'})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const exportWitness = async (): Promise<string> => {
    const out = path.join(d.dir.path, `witness-${++exports}.jsonl`);
    const r = await d.listenerCli(site, ['--json', 'checkpoints', 'export', '--out', out]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return out;
  };

  /** As the owner, with the append-only triggers off for the statement: what someone with owner rights can do. */
  const asOwner = async (work: () => Promise<void>): Promise<void> => {
    await pg.query('BEGIN');
    await pg.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await pg.query('ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_no_update');
    await work();
    await pg.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
    await pg.query('ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_no_update');
    await pg.query('COMMIT');
  };

  /** The attacker's own hub identity and checkpoints: every remaining checkpoint re-signed, chained, under their key. */
  const resignEverything = async (key: KeyObject): Promise<void> => {
    const heads = (await pg.query('SELECT seq::int, hash FROM audit_events WHERE seq IN (SELECT seq FROM audit_checkpoints) ORDER BY seq')).rows as Array<{ seq: number; hash: string }>;
    await pg.query('DELETE FROM audit_checkpoints');
    let prev = { seq: 0, digest: GENESIS_HASH };
    for (const h of heads) {
      const cp: StoredCheckpoint & { at: string; prevSeq: number; prevDigest: string } = {
        seq: h.seq,
        hash: h.hash,
        at: new Date().toISOString(),
        prevSeq: prev.seq,
        prevDigest: prev.digest,
        signature: '',
      };
      const payload = { type: AUDIT_CHECKPOINT_TYPE, seq: cp.seq, hash: cp.hash, at: cp.at, prevSeq: cp.prevSeq, prevDigest: cp.prevDigest };
      cp.signature = sign('sha256', canonicalBytes(payload), { key, dsaEncoding: 'ieee-p1363' }).toString('base64');
      await pg.query('INSERT INTO audit_checkpoints (seq, hash, at, signature, prev_seq, prev_digest) VALUES ($1, $2, $3, $4, $5, $6)', [
        cp.seq,
        cp.hash,
        cp.at,
        cp.signature,
        cp.prevSeq,
        cp.prevDigest,
      ]);
      prev = { seq: cp.seq, digest: checkpointDigest(cp) };
    }
    await pg.query('UPDATE hub_identity SET signing_key = $1, fingerprint = $2', [attackerSpki, attackerFp]);
  };

  before(async function () {
    this.timeout(240_000);
    d = await Deployment.create([site]);
    await d.initHub();
    await d.startHub();
    await d.enrollListener(site);
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async function () {
    this.timeout(60_000);
    await pg?.end().catch(() => undefined);
    await d?.cleanup();
  });

  it('the service runs as its own role; the site verifies and keeps each checkpoint, owner-only, and the copy verifies the real history', async function () {
    this.timeout(120_000);
    const [who] = (
      await pg.query(
        'SELECT a.usename, r.rolsuper AS usesuper FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename WHERE a.datname = current_database() AND a.application_name = $1 LIMIT 1',
        ['keyhub-hub'],
      )
    ).rows;
    assert.equal(who?.usename, d.db.serviceRole, 'keyhub serve connects as the service role');
    assert.equal(who?.usesuper, false);

    for (const name of ['witness-key-1', 'witness-key-2']) assert.equal((await d.keyhub(['key', 'create', name, '--alg', 'AES-256'])).code, 0);
    const first = await checkpointNow();
    await waitForWitness(first.seq);
    assert.equal((await d.keyhub(['key', 'create', 'witness-key-3', '--alg', 'AES-256'])).code, 0);
    const second = await checkpointNow();
    assert.ok(second.seq > first.seq);
    assert.equal(second.prevSeq, first.seq, 'each checkpoint names the previous one');
    await waitForWitness(second.seq);
    assert.equal((await stat(witnessPath())).mode & 0o777, 0o600);

    witnessFile = await exportWitness();
    await pg.query('CREATE TEMP TABLE saved_events AS SELECT * FROM audit_events');
    await pg.query('CREATE TEMP TABLE saved_checkpoints AS SELECT * FROM audit_checkpoints');
    await pg.query('CREATE TEMP TABLE saved_identity AS SELECT * FROM hub_identity');

    const ok = await verify(['--witness', witnessFile]);
    assert.equal(ok.code, 0, ok.text);
    assert.equal(ok.out.ok, true);
    assert.equal(ok.out.trust, 'witness');
    assert.deepEqual(ok.out.sites, [site]);
    assert.ok((ok.out.witnessed?.checkpoints ?? 0) >= 2);
    assert.ok((ok.out.witnessed?.lastSeq ?? 0) >= second.seq);

    // Nothing to check the signatures against is refused, not passed.
    const unpinned = await verify([]);
    assert.notEqual(unpinned.code, 0);
    assert.equal(unpinned.out.error?.code, 'HUB_KEY_NOT_PINNED');
  });

  it('a truncation back past a witnessed checkpoint, with the hub key replaced and the checkpoints re-signed, is caught by the site copy', async function () {
    this.timeout(60_000);
    const witnessed = (await readFile(witnessFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .slice(1)
      .map((l) => (JSON.parse(l) as { payload: { seq: number } }).payload.seq);
    const cut = Math.min(...witnessed) - 1;
    await asOwner(async () => {
      await pg.query('DELETE FROM audit_events WHERE seq > $1', [cut]);
      await resignEverything(attacker.privateKey);
    });

    // Under the key the forged database names, everything is consistent: why a key from the data proves nothing.
    const selfConsistent = await verify(['--fingerprint', attackerFp]);
    assert.equal(selfConsistent.code, 0, selfConsistent.text);
    // The real pinned fingerprint sees the swapped key.
    const pinned = await verify(['--fingerprint', d.hubFingerprint]);
    assert.equal(pinned.out.error?.code, 'HUB_KEY_NOT_PINNED', pinned.text);
    // The site's copy names the loss.
    const caught = await verify(['--witness', witnessFile]);
    assert.equal(caught.code, 5, caught.text);
    assert.equal(caught.out.error?.code, 'AUDIT_CHAIN_BROKEN');
    assert.equal(caught.out.error?.details?.hubKeyReplaced, true);
    assert.match(caught.out.error?.message ?? '', /signature does not verify under the pinned hub key|events were removed/);
  });

  it('a rewrite behind a witnessed checkpoint, re-chained and re-signed under a replaced hub key, is caught by the site copy', async function () {
    this.timeout(60_000);
    // Back to the real history first, and the copy verifies again.
    await asOwner(async () => {
      await pg.query('DELETE FROM audit_events');
      await pg.query('INSERT INTO audit_events SELECT * FROM saved_events');
      await pg.query('DELETE FROM audit_checkpoints');
      await pg.query('INSERT INTO audit_checkpoints SELECT * FROM saved_checkpoints');
      await pg.query('UPDATE hub_identity h SET signing_key = s.signing_key, fingerprint = s.fingerprint FROM saved_identity s WHERE h.id = s.id');
    });
    const restored = await verify(['--witness', witnessFile]);
    assert.equal(restored.code, 0, restored.text);

    await asOwner(async () => {
      await pg.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 2`);
      const rows = (await pg.query('SELECT seq, at, actor, action, subject, details, prev_hash FROM audit_events WHERE seq >= 2 ORDER BY seq')).rows;
      let prev = rows[0].prev_hash as string;
      for (const r of rows) {
        const hash = auditHash(prev, { seq: Number(r.seq), at: r.at as Date, actor: r.actor, action: r.action, subject: r.subject, details: r.details });
        await pg.query('UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE seq = $1', [r.seq, prev, hash]);
        prev = hash;
      }
      await resignEverything(attacker.privateKey);
    });

    const selfConsistent = await verify(['--fingerprint', attackerFp]);
    assert.equal(selfConsistent.code, 0, selfConsistent.text);
    const caught = await verify(['--witness', witnessFile]);
    assert.equal(caught.code, 5, caught.text);
    assert.equal(caught.out.error?.code, 'AUDIT_CHAIN_BROKEN');
    assert.equal(caught.out.error?.details?.hubKeyReplaced, true);

    // Offline too: an export of the forged hub, checked against the site's copy with no hub involved.
    const file = path.join(d.dir.path, 'forged-export.jsonl');
    assert.equal((await d.keyhub(['audit', 'export', '--out', file], { as: 'auditor' })).code, 0);
    const offline = await verify(['--file', file, '--witness', witnessFile]);
    assert.equal(offline.out.error?.code, 'AUDIT_CHAIN_BROKEN', offline.text);

    // The hub itself refuses to act on top of it: the head's HSM seal does not match the re-chained head, so no
    // action can be audited (and none is taken), and the checkpoint job refuses to sign (logged at error level).
    const refused = await d.keyhub(['--json', 'key', 'create', 'after-rewrite', '--alg', 'AES-256']);
    assert.equal(refused.code, 5, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /AUDIT_CHAIN_BROKEN/);
    const keys = await pg.query(`SELECT count(*)::int AS n FROM keys WHERE name = 'after-rewrite'`);
    assert.equal(keys.rows[0].n, 0, 'no key was created');
    for (const deadline = Date.now() + 15_000; !/AUDIT_CHAIN_BROKEN/.test(d.hub?.output ?? '') && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 250));
    assert.match(d.hub?.output ?? '', /AUDIT_CHAIN_BROKEN/);
  });
});
