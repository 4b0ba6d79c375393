import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { encodeEnvelope, MESSAGE_TYPES, signingInput, subjects, type Heartbeat, type Receipt, type SignedEnvelope } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { HeartbeatHandler } from '@keyhub/hub/dist/bus/heartbeat-handler';
import { UpHandler } from '@keyhub/hub/dist/bus/up-handler';
import { FRESH_PAST_MS } from '@keyhub/hub/dist/domain/liveness';
import { verifyStoredAudit } from '@keyhub/hub/dist/operations/audit/verify-stored-audit';
import { ApplyReceipt } from '@keyhub/hub/dist/operations/distributions/apply-receipts';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { ResendDue } from '@keyhub/hub/dist/operations/distributions/resend-due';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { RecordHeartbeats } from '@keyhub/hub/dist/operations/listeners/record-heartbeats';
import { VerifyListenerSignature } from '@keyhub/hub/dist/operations/listeners/verify-listener-signature';
import type { ConfirmRootKek } from '@keyhub/hub/dist/operations/listeners/confirm-root-kek';
import type { RegisterEnrollment } from '@keyhub/hub/dist/operations/listeners/register-enrollment';
import { createHubFixture, insertActiveListeners, listenerIds, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

interface Row {
  id: string;
  state: string;
  attempts: number;
  last_package_id: string;
  error_code: string | null;
  target_kcv: string | null;
  kcv: string;
  sha: string;
}

/**
 * Against a real PostgreSQL and hub HSM: receipts apply only to the package
 * whose envelope hash they name, a KCV mismatch stays failed until an
 * operator distributes again, and heartbeats move a listener's last-seen
 * time only when fresh and newer than the last one.
 */
describe('receipts bound to their package, terminal KCV mismatches, replay-proof heartbeats', function () {
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let apply: ApplyReceipt;
  const [site, beat] = listenerIds(2, 'bind');
  const identity = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

  before(async function () {
    this.timeout(120_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    await insertActiveListeners(fx, [site, beat]);
    // A listener whose identity key the test holds, so it can sign as that listener.
    await fx.rt.ds.query('UPDATE listeners SET identity_key = $1, last_seen_at = NULL WHERE id = $2', [identity.publicKey.export({ type: 'spki', format: 'der' }), beat]);
    const createKey = fx.rt.container.resolve(CreateKey);
    for (const name of ['b-1', 'b-2', 'b-3']) await createKey.execute({ name, algorithm: 'AES-256', actor: 'test' });
    apply = fx.rt.container.resolve(ApplyReceipt);
    await fx.rt.container.resolve(Distribute).execute({ keys: ['b-1', 'b-2', 'b-3'].map((name) => ({ name })), to: [{ listenerId: site }], actor: 'test' });
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const row = async (key: string): Promise<Row> => {
    const [r] = await fx.rt.ds.query(
      `SELECT d.id, d.state, d.attempts, d.last_package_id, d.error_code, d.target_kcv, v.kcv, encode(p.envelope_sha256, 'hex') AS sha
         FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id JOIN packages p ON p.id = d.last_package_id
        WHERE k.name = $1 AND d.listener_id = $2`,
      [key, site],
    );
    return r as Row;
  };
  const receipt = (r: Row, extra: Partial<Receipt>): Receipt => ({
    type: MESSAGE_TYPES.receipt,
    id: randomUUID(),
    listenerId: site,
    issuedAt: new Date().toISOString(),
    packageId: r.last_package_id,
    packageSha256: r.sha,
    target: 'hsm',
    outcome: 'imported',
    kcv: r.kcv,
    ...extra,
  });
  const auditCount = async (): Promise<number> => Number((await fx.rt.ds.query('SELECT count(*) AS n FROM audit_events'))[0].n);

  it('the hub keeps the SHA-256 of every package envelope it publishes', async () => {
    const r = await row('b-1');
    const [o] = await fx.rt.ds.query(`SELECT encode(sha256(payload), 'hex') AS sha FROM outbox WHERE msg_id = $1`, [r.last_package_id]);
    assert.match(r.sha, /^[0-9a-f]{64}$/);
    assert.equal(r.sha, o.sha);
  });

  it("a receipt for package X carrying package Y's hash changes nothing and is refused with RECEIPT_PACKAGE_MISMATCH; the right hash applies", async function () {
    this.timeout(30_000);
    const x = await row('b-1');
    const y = await row('b-2');
    const audit = await auditCount();
    const forged = receipt(x, { packageSha256: y.sha });
    assert.deepEqual(await apply.executeBatch([forged]), ['package_mismatch']);
    assert.deepEqual(await row('b-1'), x, 'distribution X unchanged');
    assert.deepEqual(await row('b-2'), y, 'distribution Y unchanged');
    assert.equal(await auditCount(), audit, 'no audit event');

    // Through the bus adapter the same receipt is terminated with its stable code.
    const up = new UpHandler({ execute: async () => undefined } as unknown as VerifyListenerSignature, {} as RegisterEnrollment, {} as ConfirmRootKek, apply, fx.logger);
    const envelope: SignedEnvelope<Receipt> = { payload: receipt(x, { packageSha256: y.sha }), signature: { alg: 'ES256', keyId: 'k', value: Buffer.alloc(64).toString('base64') } };
    await assert.rejects(up.process(subjects.fromListener(site, 'receipt'), encodeEnvelope(envelope)), (e: unknown) => KeyhubError.is(e, 'RECEIPT_PACKAGE_MISMATCH'));
    assert.deepEqual(await row('b-1'), x);

    assert.deepEqual(await apply.executeBatch([receipt(x, {})]), ['confirmed']);
    assert.equal((await row('b-1')).state, 'confirmed');
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok);
  });

  it('a KCV-mismatch failure stays failed (no re-issue, no revival) until a distribute re-queues it', async function () {
    this.timeout(60_000);
    const d = await row('b-3');
    const wrong = d.kcv === '000000' ? '111111' : '000000';
    assert.deepEqual(await apply.executeBatch([receipt(d, { kcv: wrong })]), ['kcv_mismatch']);
    const failed = await row('b-3');
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error_code, 'KCV_MISMATCH');
    // Receipts that would re-issue or confirm any other failed distribution change nothing here.
    const effects = await apply.executeBatch([
      receipt(d, { outcome: 'failed', kcv: undefined, error: { code: 'PACKAGE_EXPIRED', detail: 'late' } }),
      receipt(d, { outcome: 'rejected', kcv: undefined, error: { code: 'PACKAGE_REPLAYED', detail: 'again' } }),
      receipt(d, {}),
    ]);
    assert.deepEqual(effects, ['terminal', 'terminal', 'terminal']);
    // Neither does the re-send job, however late.
    await fx.rt.ds.query(`UPDATE distributions SET updated_at = now() - interval '1 day', last_sent_at = now() - interval '1 day' WHERE id = $1`, [d.id]);
    await fx.rt.container.resolve(ResendDue).execute();
    assert.deepEqual(await row('b-3'), { ...failed }, 'still failed, same package, same attempts');

    // An operator's distribute of the same key to the same target queues it afresh.
    const again = await fx.rt.container.resolve(Distribute).execute({ keys: [{ name: 'b-3' }], to: [{ listenerId: site }], actor: 'officer' });
    assert.equal(again.queued.length, 1);
    const requeued = await row('b-3');
    assert.equal(requeued.state, 'queued');
    assert.equal(requeued.error_code, null);
    assert.notEqual(requeued.last_package_id, d.last_package_id);
    assert.deepEqual(await apply.executeBatch([receipt(requeued, {})]), ['confirmed']);
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok);
  });

  describe('heartbeats', () => {
    let seq = 1_000;
    const signed = (hb: Heartbeat): Uint8Array => {
      const value = sign('sha256', signingInput(hb), { key: identity.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');
      return encodeEnvelope({ payload: hb, signature: { alg: 'ES256', keyId: 'k', value } });
    };
    const heartbeat = (over: Partial<Heartbeat> = {}): Heartbeat => ({
      type: MESSAGE_TYPES.heartbeat,
      id: randomUUID(),
      listenerId: beat,
      issuedAt: new Date().toISOString(),
      sequence: ++seq,
      targets: [],
      ...over,
    });
    const lastSeen = async (): Promise<Date | null> => (await fx.rt.ds.query('SELECT last_seen_at FROM listeners WHERE id = $1', [beat]))[0].last_seen_at;
    /** One replica's handler plus the flush; each call is a fresh replica unless one is given. */
    const deliver = async (data: Uint8Array, handler = new HeartbeatHandler(new VerifyListenerSignature(fx.rt.ds), fx.logger)): Promise<string[]> => {
      await handler.check({ subject: subjects.heartbeat(beat), data });
      return new RecordHeartbeats(fx.rt.ds).execute(handler.takeSeen());
    };

    it('a fresh heartbeat moves last_seen_at; a captured one replayed later, on any replica, does not', async () => {
      const captured = signed(heartbeat());
      assert.deepEqual(await deliver(captured), [beat]);
      const seen = await lastSeen();
      assert.ok(seen);
      // The site dies; long after, someone replays the captured heartbeat.
      await fx.rt.ds.query(`UPDATE listeners SET last_seen_at = now() - interval '1 hour' WHERE id = $1`, [beat]);
      const before = await lastSeen();
      assert.deepEqual(await deliver(captured), [], 'another replica (no memory of it) refuses it in SQL: sequence not newer');
      const replica = new HeartbeatHandler(new VerifyListenerSignature(fx.rt.ds), fx.logger);
      await deliver(captured, replica);
      assert.deepEqual(await deliver(captured, replica), []);
      assert.equal(replica.refused, 1, 'the same replica refuses it before any signature work');
      assert.deepEqual(await lastSeen(), before);
      // A copy with a stale time (as one captured more than the window ago would have) is refused up front.
      const old = heartbeat({ issuedAt: new Date(Date.now() - FRESH_PAST_MS - 5_000).toISOString() });
      const h = new HeartbeatHandler(new VerifyListenerSignature(fx.rt.ds), fx.logger);
      assert.deepEqual(await deliver(signed(old), h), []);
      assert.equal(h.refused, 1);
      assert.deepEqual(await lastSeen(), before);
      // A forged heartbeat (not the listener's key) changes nothing either.
      const forged = encodeEnvelope({ payload: heartbeat(), signature: { alg: 'ES256', keyId: 'k', value: Buffer.alloc(64, 1).toString('base64') } });
      assert.deepEqual(await deliver(forged), []);
      assert.deepEqual(await lastSeen(), before);
      // The live listener's next heartbeat does.
      assert.deepEqual(await deliver(signed(heartbeat())), [beat]);
      assert.ok((await lastSeen())!.getTime() > before!.getTime());
    });
  });
});
