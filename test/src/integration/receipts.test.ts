import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { decodeEnvelope, MESSAGE_TYPES, verifyEnvelope, type Receipt } from '@keyhub/protocol';
import { verifyStoredAudit } from '@keyhub/hub/dist/operations/audit/verify-stored-audit';
import { ApplyReceipt } from '@keyhub/hub/dist/operations/distributions/apply-receipts';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { createHubFixture, insertActiveListeners, listenerIds, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

interface Row {
  id: string;
  listener_id: string;
  key: string;
  state: string;
  attempts: number;
  last_package_id: string;
  target_kcv: string | null;
  error_code: string | null;
  kcv: string;
  /** SHA-256 (hex) of the distribution's current package, as the hub kept it. */
  sha: string | null;
}

describe('receipts: one batch, every outcome, applied with set-based SQL', function () {
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let apply: ApplyReceipt;
  const [siteA, siteB] = listenerIds(2, 'rcpt');

  before(async function () {
    this.timeout(120_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    await insertActiveListeners(fx, [siteA, siteB]);
    const createKey = fx.rt.container.resolve(CreateKey);
    for (const name of ['r-1', 'r-2', 'r-3', 'r-4', 'r-5', 'r-6']) await createKey.execute({ name, algorithm: 'AES-256', actor: 'test' });
    apply = fx.rt.container.resolve(ApplyReceipt);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const rows = async (): Promise<Map<string, Row>> => {
    const r: Row[] = await fx.rt.ds.query(
      `SELECT d.id, d.listener_id, k.name AS key, d.state, d.attempts, d.last_package_id, d.target_kcv, d.error_code, v.kcv, encode(p.envelope_sha256, 'hex') AS sha
         FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id LEFT JOIN packages p ON p.id = d.last_package_id`,
    );
    return new Map(r.map((x) => [`${x.key}@${x.listener_id}`, x]));
  };
  const receipt = (row: Row, outcome: Receipt['outcome'], extra: Partial<Receipt> = {}): Receipt => ({
    type: MESSAGE_TYPES.receipt,
    id: randomUUID(),
    listenerId: row.listener_id,
    issuedAt: new Date().toISOString(),
    packageId: row.last_package_id,
    packageSha256: row.sha ?? '00'.repeat(32),
    target: 'hsm',
    outcome,
    ...extra,
  });

  it('confirms, rejects a wrong KCV, re-issues, fails, and ignores duplicates and strangers, each once', async function () {
    this.timeout(60_000);
    await fx.rt.container.resolve(Distribute).execute({ keys: ['r-1', 'r-2', 'r-3', 'r-4', 'r-5'].map((name) => ({ name })), to: [{ listenerId: siteA }], actor: 'test' });
    let d = await rows();
    const [d1, d2, d3, d4, d5] = ['r-1', 'r-2', 'r-3', 'r-4', 'r-5'].map((k) => d.get(`${k}@${siteA}`)!);
    // d5 has used up its attempts: an expired package ends it as failed.
    await fx.rt.ds.query('UPDATE distributions SET attempts = 5 WHERE id = $1', [d5.id]);
    const wrongKcv = d2.kcv === '000000' ? '111111' : '000000';
    const expired = { error: { code: 'PACKAGE_EXPIRED' as const, detail: 'package expired' } };
    const batch: Receipt[] = [
      receipt(d1, 'imported', { kcv: d1.kcv }),
      receipt(d1, 'already_present', { kcv: d1.kcv }),
      receipt(d2, 'imported', { kcv: wrongKcv }),
      receipt(d3, 'failed', expired),
      receipt(d3, 'failed', expired),
      receipt(d4, 'rejected', { error: { code: 'TARGET_UNKNOWN', detail: 'no target named hsm' } }),
      receipt(d5, 'failed', expired),
      { ...receipt(d1, 'imported', { kcv: d1.kcv }), packageId: randomUUID() },
      // A package of site A, claimed by site B.
      { ...receipt(d4, 'imported', { kcv: d4.kcv }), listenerId: siteB },
    ];
    const effects = await apply.executeBatch(batch);
    assert.deepEqual(effects, ['confirmed', 'duplicate', 'kcv_mismatch', 'reissued', 'duplicate', 'failed', 'failed', 'ignored', 'ignored']);

    d = await rows();
    const after = (row: Row) => d.get(`${row.key}@${row.listener_id}`)!;
    assert.equal(after(d1).state, 'confirmed');
    assert.equal(after(d1).target_kcv, d1.kcv);
    assert.equal(after(d2).state, 'failed');
    assert.equal(after(d2).error_code, 'KCV_MISMATCH');
    assert.equal(after(d2).target_kcv, wrongKcv);
    assert.equal(after(d3).state, 'queued');
    assert.equal(after(d3).attempts, 2);
    assert.notEqual(after(d3).last_package_id, d3.last_package_id);
    assert.equal(after(d3).error_code, 'PACKAGE_EXPIRED');
    assert.equal(after(d4).state, 'failed');
    assert.equal(after(d4).error_code, 'TARGET_UNKNOWN');
    assert.equal(after(d5).state, 'failed');
    assert.equal(after(d5).error_code, 'PACKAGE_EXPIRED');

    // The re-issued package is in the outbox, signed, with a fresh sequence.
    const [out] = await fx.rt.ds.query('SELECT payload FROM outbox WHERE msg_id = $1', [after(d3).last_package_id]);
    const env = decodeEnvelope(out.payload);
    assert.ok(env.ok && verifyEnvelope(env.envelope, fx.keyring.signingSpki));
    if (env.ok && env.envelope.payload.type === MESSAGE_TYPES.keyPackage) assert.equal(env.envelope.payload.sequence, 6);

    const events: Array<{ action: string; subject: string; details: Record<string, unknown> }> = await fx.rt.ds.query(
      `SELECT action, subject, details FROM audit_events WHERE subject LIKE 'distribution:%' ORDER BY seq`,
    );
    assert.deepEqual(
      events.map((e) => [e.action, e.subject]),
      [
        ['distribution.confirmed', `distribution:${d1.id}`],
        ['distribution.failed', `distribution:${d2.id}`],
        ['distribution.reissued', `distribution:${d3.id}`],
        ['distribution.failed', `distribution:${d4.id}`],
        ['distribution.failed', `distribution:${d5.id}`],
      ],
    );
    assert.equal(events[2].details.packageId, after(d3).last_package_id);

    // The same receipts again change nothing.
    const again = await apply.executeBatch(batch.slice(0, 2));
    assert.deepEqual(again, ['duplicate', 'duplicate']);
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok);
  });

  it('a batch the database refuses is applied receipt by receipt: only the refused one fails', async function () {
    this.timeout(60_000);
    await fx.rt.container.resolve(Distribute).execute({ keys: [{ name: 'r-6' }, { name: 'r-1' }], to: [{ listenerId: siteB }], actor: 'test' });
    const d = await rows();
    const ok = d.get(`r-1@${siteB}`)!;
    const refused = d.get(`r-6@${siteB}`)!;
    await fx.asOwner(`CREATE FUNCTION test_refuse_confirm() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id = '${refused.id}' AND NEW.state = 'confirmed' THEN RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END $$`);
    await fx.asOwner('CREATE TRIGGER test_refuse_confirm BEFORE UPDATE ON distributions FOR EACH ROW EXECUTE FUNCTION test_refuse_confirm()');
    try {
      const effects = await apply.executeBatch([receipt(refused, 'imported', { kcv: refused.kcv }), receipt(ok, 'imported', { kcv: ok.kcv })]);
      assert.ok(effects[0] instanceof Error);
      assert.match((effects[0] as Error).message, /refused by test/);
      assert.equal(effects[1], 'confirmed');
    } finally {
      await fx.asOwner('DROP TRIGGER test_refuse_confirm ON distributions');
    }
    const after = await rows();
    assert.equal(after.get(`r-1@${siteB}`)!.state, 'confirmed');
    assert.equal(after.get(`r-6@${siteB}`)!.state, 'queued');
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok);
  });
});
