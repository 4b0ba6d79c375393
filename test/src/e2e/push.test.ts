import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign as nodeSign } from 'node:crypto';
import { writeFile, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { NatsConnection } from 'nats';
import { Client } from 'pg';
import { decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, signingInput, STREAMS, subjects, type KeyPackage, type Receipt, type SignedEnvelope } from '@keyhub/protocol';
import { cmacSubkey, Pkcs11Hsm } from '@keyhub/shared';
import { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { pkcs11Tool } from '../env';
import { Deployment } from '../harness/deployment';

describe('end to end: enrollment, push into a PKCS#11 target, receipts, audit', function () {
  this.timeout(180_000);
  let d: Deployment;
  let nc: NatsConnection;
  let pg: Client;

  before(async () => {
    d = await Deployment.create(['site-a', 'site-b', 'site-c']);
    await d.initHub();
    await d.startHub();
    await d.enrollListener('site-a');
    await d.enrollListener('site-b');
    nc = await d.natsConnect();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    await nc?.close();
    await pg?.end();
    await d?.cleanup();
  });

  async function status(key: string): Promise<StatusRow[]> {
    return d.keyhubJson<StatusRow[]>(['status', key]);
  }

  /** Secret-key objects in a listener's token whose label starts with the key name, via pkcs11-tool. */
  async function tokenObjects(site: string, label: string): Promise<string[]> {
    const token = d.site(site).token;
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split(/\n(?=Secret Key Object)/).filter((block) => block.includes(`label:      ${label}`));
  }

  /** AES-CMAC KCV from two raw AES-ECB encryptions done by pkcs11-tool in the target token. */
  async function kcvViaPkcs11Tool(site: string, idHex: string): Promise<string> {
    const token = d.site(site).token;
    const ecb = async (block: Buffer): Promise<Buffer> => {
      const input = path.join(d.dir.path, `in-${randomUUID()}`);
      const output = `${input}.out`;
      await writeFile(input, block);
      const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--encrypt', '-m', 'AES-ECB', '--id', idHex, '--input-file', input, '--output-file', output]);
      assert.equal(r.code, 0, `pkcs11-tool --encrypt failed: ${r.stderr}`);
      return readFile(output);
    };
    const l = await ecb(Buffer.alloc(16));
    const cmac = await ecb(cmacSubkey(l));
    return cmac.subarray(0, 3).toString('hex');
  }

  function receiptsFor(listenerId: string): { next(predicate: (r: Receipt) => boolean, timeoutMs?: number): Promise<Receipt> } {
    const seen: Receipt[] = [];
    nc.subscribe(subjects.fromListener(listenerId, 'receipt'), {
      callback: (_e, m) => {
        const dec = decodeEnvelope(m.data);
        if (dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.receipt) seen.push(dec.envelope.payload as Receipt);
      },
    });
    return {
      async next(predicate, timeoutMs = 20_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const hit = seen.find(predicate);
          if (hit) return hit;
          if (Date.now() > deadline) throw new Error(`no matching receipt from ${listenerId}; saw ${JSON.stringify(seen.map((r) => [r.outcome, r.error?.code]))}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
    };
  }

  /** The newest key package the hub published to a listener, straight from the stream. */
  async function lastPackage(listenerId: string): Promise<SignedEnvelope<KeyPackage>> {
    const jsm = await nc.jetstreamManager();
    const m = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.toListener(listenerId, 'package') });
    const dec = decodeEnvelope(m.data);
    assert.ok(dec.ok);
    return dec.envelope as SignedEnvelope<KeyPackage>;
  }

  async function publishDown(listenerId: string, envelope: SignedEnvelope<KeyPackage>): Promise<void> {
    const js = nc.jetstream();
    await js.publish(subjects.toListener(listenerId, 'package'), encodeEnvelope(envelope), { msgID: randomUUID() });
  }

  /** Signs a payload with the real hub key, the way only the hub can (the test holds the hub token PIN). */
  async function hubSign(payload: KeyPackage): Promise<SignedEnvelope<KeyPackage>> {
    process.env.SOFTHSM2_CONF = d.hsm.confPath;
    process.env.KEYHUB_TEST_HUB_PIN = d.hsm.tokens.find((t) => t.label === 'hub')!.pin;
    const hsm = await Pkcs11Hsm.open({ module: d.hsm.modulePath, tokenLabel: 'hub', pinEnv: 'KEYHUB_TEST_HUB_PIN', sessions: 1 });
    try {
      return await (await HubKeyring.load(hsm)).sign(payload);
    } finally {
      await hsm.close();
    }
  }

  /** Takes the next sequence number from the hub's counter, as the hub does when it issues a package. */
  async function nextSequence(listenerId: string): Promise<number> {
    const r = await pg.query(
      `INSERT INTO listener_sequences AS s (listener_id, last_sequence) VALUES ($1, 1)
       ON CONFLICT (listener_id) DO UPDATE SET last_sequence = s.last_sequence + 1 RETURNING last_sequence`,
      [listenerId],
    );
    return Number(r.rows[0].last_sequence);
  }

  it('pushes a key into the target token, where pkcs11-tool finds it sensitive, non-extractable and with the hub KCV', async () => {
    const created = await d.keyhubJson<{ kcv: string; id: string }>(['key', 'create', 'payments-zmk', '--alg', 'AES-256']);
    const push = await d.keyhub(['distribute', 'payments-zmk', '--to', 'site-a', '--wait', '--timeout', '60']);
    assert.equal(push.code, 0, push.stdout + push.stderr);

    const rows = await status('payments-zmk');
    assert.equal(rows.length, 1);
    assert.equal(rows[0].state, 'confirmed');
    assert.equal(rows[0].targetKcv, created.kcv);

    const objects = await tokenObjects('site-a', 'payments-zmk.v1');
    assert.equal(objects.length, 1, 'exactly one object for the key version');
    const obj = objects[0];
    // SoftHSM reports no CKA_VALUE_LEN for unwrapped keys; the KCV below proves the value.
    assert.match(obj, /^Secret Key Object; AES/);
    assert.match(obj, /Access:\s+.*\bsensitive\b/);
    assert.doesNotMatch(obj.replace(/never extractable/g, ''), /\bextractable\b/, 'CKA_EXTRACTABLE must be false');
    const expectedId = created.id.replace(/-/g, '') + '00000001';
    assert.match(obj, new RegExp(`ID:\\s+${expectedId}`));
    assert.equal(await kcvViaPkcs11Tool('site-a', expectedId), created.kcv);
  });

  it('once a site confirms its root KEK, its root-KEK and credentials messages are gone from the stream', async () => {
    const jsm = await nc.jetstreamManager();
    for (const site of ['site-a', 'site-b']) {
      for (const kind of ['root_kek', 'nats_credentials'] as const) {
        const subject = subjects.toListener(site, kind);
        // Purged after the confirmation; the hub may still be finishing that for the site enrolled last.
        let found = true;
        for (const deadline = Date.now() + 10_000; found && Date.now() < deadline;) {
          found = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subject }).then(
            () => true,
            () => false,
          );
          if (found) await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(found, false, `${subject} still holds a message`);
      }
    }
  });

  it('refuses approval with a wrong fingerprint and leaves the listener pending', async () => {
    const init = await d.listenerCli('site-c', [
      'init',
      '--id',
      'site-c',
      '--nats',
      d.nats.url,
      '--hub-fingerprint',
      d.hubFingerprint,
      '--hsm-module',
      d.hsm.modulePath,
      '--token-label',
      'site-c',
      ...(await d.listenerNatsArgs('site-c')),
    ]);
    assert.equal(init.code, 0, init.stderr);
    const enroll = await d.listenerCli('site-c', ['--json', 'enroll']);
    assert.equal(enroll.code, 0, enroll.stderr);
    await d.waitForListenerState('site-c', 'pending_approval');
    const wrong = 'ffff-'.repeat(15) + 'ffff';
    const r = await d.keyhub(['listener', 'approve', 'site-c', '--fingerprint', wrong]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /FINGERPRINT_MISMATCH/);
    assert.equal(await d.listenerState('site-c'), 'pending_approval');
    const keks = await pg.query(`SELECT count(*)::int AS n FROM keks WHERE listener_id = 'site-c'`);
    assert.equal(keks.rows[0].n, 0, 'no root KEK is created for a refused approval');
  });

  describe('rejected packages import nothing', () => {
    let base: SignedEnvelope<KeyPackage>;
    const receipts = () => receiptsFor('site-a');
    let r: ReturnType<typeof receiptsFor>;

    before(async () => {
      r = receipts();
      base = await lastPackage('site-a');
    });

    async function assertNothingImported(): Promise<void> {
      assert.equal((await tokenObjects('site-a', 'payments-zmk')).length, 1);
    }

    it('a package signed by another key earns no receipt at all (unverified input is dropped, not answered)', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const payload = { ...base.payload, id: randomUUID(), sequence: base.payload.sequence + 1000 };
      const forged: SignedEnvelope<KeyPackage> = {
        payload,
        signature: { alg: 'ES256', keyId: base.signature.keyId, value: nodeSign('sha256', signingInput(payload), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') },
      };
      await publishDown('site-a', forged);
      // A genuine message after it: once its receipt is out, the forged one was handled too.
      await publishDown('site-a', base);
      await r.next((x) => x.packageId === base.payload.id && x.outcome === 'rejected');
      await new Promise((res) => setTimeout(res, 500));
      await assert.rejects(
        r.next((x) => x.packageId === payload.id, 100),
        /no matching receipt/,
      );
      await assertNothingImported();
    });

    it('a replayed package: PACKAGE_REPLAYED', async () => {
      await publishDown('site-a', base);
      const rec = await r.next((x) => x.packageId === base.payload.id && x.outcome === 'rejected');
      assert.equal(rec.error?.code, 'PACKAGE_REPLAYED');
      await assertNothingImported();
    });

    it('an expired package: PACKAGE_EXPIRED', async () => {
      const payload: KeyPackage = { ...base.payload, id: randomUUID(), sequence: await nextSequence('site-a'), expiresAt: new Date(Date.now() - 1000).toISOString() };
      await publishDown('site-a', await hubSign(payload));
      const rec = await r.next((x) => x.packageId === payload.id);
      assert.equal(rec.outcome, 'rejected');
      assert.equal(rec.error?.code, 'PACKAGE_EXPIRED');
      await assertNothingImported();
    });

    it('a package for another listener: PACKAGE_WRONG_LISTENER', async () => {
      const payload: KeyPackage = { ...base.payload, id: randomUUID(), listenerId: 'site-b', sequence: await nextSequence('site-b') };
      await publishDown('site-a', await hubSign(payload));
      const rec = await r.next((x) => x.packageId === payload.id);
      assert.equal(rec.outcome, 'rejected');
      assert.equal(rec.error?.code, 'PACKAGE_WRONG_LISTENER');
      await assertNothingImported();
    });

    it('garbage and oversized messages are dropped without effect, and the listener keeps working', async () => {
      const js = nc.jetstream();
      await js.publish(subjects.toListener('site-a', 'package'), Buffer.from('{not json'), { msgID: randomUUID() });
      await js.publish(subjects.toListener('site-a', 'package'), Buffer.alloc(60 * 1024, 0x41), { msgID: randomUUID() });
      await d.keyhubJson(['key', 'create', 'after-garbage', '--alg', 'AES-128']);
      const push = await d.keyhub(['distribute', 'after-garbage', '--to', 'site-a/hsm', '--wait']);
      assert.equal(push.code, 0, push.stdout + push.stderr);
      assert.equal((await tokenObjects('site-a', 'after-garbage.v1')).length, 1);
    });
  });

  it('a listener that is offline during the push receives the key when it starts, and the hub confirms it', async () => {
    await d.stopListener('site-b');
    await d.keyhubJson(['key', 'create', 'offline-key', '--alg', 'AES-256']);
    const push = await d.keyhub(['distribute', 'offline-key', '--to', 'site-b']);
    assert.equal(push.code, 0, push.stderr);
    await new Promise((res) => setTimeout(res, 1500));
    const before = await status('offline-key');
    assert.ok(['queued', 'sent'].includes(before[0].state), `state before start: ${before[0].state}`);
    assert.equal((await tokenObjects('site-b', 'offline-key.v1')).length, 0);

    await d.startListener('site-b');
    const deadline = Date.now() + 30_000;
    let rows = before;
    while (rows[0].state !== 'confirmed' && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 250));
      rows = await status('offline-key');
    }
    assert.equal(rows[0].state, 'confirmed');
    assert.equal((await tokenObjects('site-b', 'offline-key.v1')).length, 1);
  });

  it('the same package delivered twice gives one key in the target and one confirmation', async () => {
    const r = receiptsFor('site-a');
    await d.keyhubJson(['key', 'create', 'twice-key', '--alg', 'AES-256']);
    const push = await d.keyhub(['distribute', 'twice-key', '--to', 'site-a', '--wait']);
    assert.equal(push.code, 0, push.stderr);
    const pkg = await lastPackage('site-a');
    assert.equal(pkg.payload.key.name, 'twice-key');
    await publishDown('site-a', pkg);
    const second = await r.next((x) => x.packageId === pkg.payload.id && x.outcome === 'rejected');
    assert.equal(second.error?.code, 'PACKAGE_REPLAYED');
    assert.equal((await tokenObjects('site-a', 'twice-key.v1')).length, 1);
    const confirmations = await pg.query(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'distribution.confirmed' AND subject = 'distribution:' || $1`, [pkg.payload.distributionId]);
    assert.equal(confirmations.rows[0].n, 1);
    assert.equal((await status('twice-key'))[0].state, 'confirmed');
  });

  it('audit verify passes on the real history and fails, naming the event, after a row is changed in PostgreSQL', async () => {
    const ok = await d.keyhub(['--json', 'audit', 'verify', '--fingerprint', d.hubFingerprint], { as: 'auditor' });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const good = JSON.parse(ok.stdout) as { ok: boolean; events: number };
    assert.equal(good.ok, true);
    assert.ok(good.events > 10);

    await assert.rejects(pg.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 3`), /append-only/);
    // Someone with table-owner rights switches the guard off: the chain still tells.
    await pg.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await pg.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 3`);
    await pg.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');

    const bad = await d.keyhub(['--json', 'audit', 'verify', '--fingerprint', d.hubFingerprint], { as: 'auditor' });
    assert.equal(bad.code, 5, bad.stdout + bad.stderr);
    const report = JSON.parse(bad.stdout) as { error: { code: string; message: string; details: { seq: number } } };
    assert.equal(report.error.code, 'AUDIT_CHAIN_BROKEN');
    assert.equal(report.error.details.seq, 3);
    assert.match(report.error.message, /event 3/);
  });

  it('keeps key material out of every log and output', async () => {
    // Wrapped blobs are ciphertext, yet no log line carries one either; clear keys never leave an HSM at all.
    const logs = [d.hub?.output ?? '', ...[...d.listeners.values()].map((s) => s.process?.output ?? '')].join('\n');
    assert.doesNotMatch(logs, /"blob"\s*:\s*"[A-Za-z0-9+/=]{20,}/);
    const pkg = await lastPackage('site-a');
    assert.ok(!logs.includes(pkg.payload.wrapping.blob));
    assert.ok(logs.length > 0, 'the processes did write logs');
  });
});
