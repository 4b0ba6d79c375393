import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { appendAudit, type AuditInput } from '@keyhub/hub/dist/audit/audit-log';
import { verifyAuditForDashboard } from '@keyhub/hub/dist/operations/dashboard/audit-verdict';
import { verifyStoredAudit } from '@keyhub/hub/dist/operations/audit/verify-stored-audit';
import { WriteCheckpoint } from '@keyhub/hub/dist/operations/audit/write-checkpoint';
import { createHubFixture, type HubFixture } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';

/**
 * The dashboard's audit verdict (operations/dashboard/audit-verdict.ts)
 * remembers the head it verified and, while the rows up to it are byte for
 * byte unchanged, hashes only the events after it. Whatever happens to the
 * stored chain between two views (appends, a rewritten event, a removed one,
 * a forged checkpoint, the row put back), its verdict must be the one of a
 * full verification (verifyStoredAudit) of the same rows, and a rewrite
 * below the remembered head must be named. A chain of 12,000 events spans
 * several of its 5,000-row pages.
 */
describe('dashboard audit verdict: the same verdict as a full verification, between views of a changing chain', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;

  const append = async (n: number, tag: string): Promise<void> => {
    for (let done = 0; done < n; done += 2000) {
      const events: AuditInput[] = [];
      for (let i = done; i < Math.min(n, done + 2000); i++) events.push({ actor: 'verdict-test', action: 'test.event', subject: `${tag}:${i}`, details: { i, tag } });
      await fx.rt.ds.transaction((m) => appendAudit(m, events));
    }
  };
  /** The dashboard's verdict, checked against a full verification of the same rows (nothing writes between the two). */
  const verdict = async (): Promise<Awaited<ReturnType<typeof verifyAuditForDashboard>>> => {
    const key = fx.keyring.signingSpki;
    const v = await verifyAuditForDashboard(fx.rt.ds, key);
    assert.deepEqual(v, await verifyStoredAudit(fx.rt.ds, key));
    return v;
  };
  const asOwnerOn = (table: string, sql: string): Promise<unknown[]> =>
    fx.asOwner(`BEGIN; ALTER TABLE ${table} DISABLE TRIGGER ${table}_no_update; ${sql}; ALTER TABLE ${table} ENABLE TRIGGER ${table}_no_update; COMMIT`);

  before(async () => {
    fx = await createHubFixture({ cleanup } as Parameters<typeof createHubFixture>[0], { nats: false });
    await append(12_000, 'first');
    await new WriteCheckpoint(fx.rt.ds, fx.keyring).execute();
  });

  after(async () => {
    await cleanup.run();
    assert.deepEqual(cleanup.failures, []);
  });

  it('a chain as written verifies, views after appends verify and count the new events', async () => {
    const first = await verdict();
    assert.equal(first.ok, true);
    const head = first.head!.seq;
    assert.ok(head >= 12_000);
    await append(7, 'more');
    const second = await verdict();
    assert.equal(second.ok, true);
    assert.equal(second.head!.seq, head + 7);
    assert.equal((await verdict()).head!.seq, head + 7);
  });

  it('an event rewritten below the verified head is named; put back, the chain verifies again', async () => {
    assert.equal((await verdict()).ok, true);
    await asOwnerOn('audit_events', "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7000");
    const bad = await verdict();
    assert.equal(bad.ok, false);
    assert.equal(bad.firstBad?.seq, 7000);
    assert.match(bad.firstBad?.reason ?? '', /content does not match its hash/);
    await asOwnerOn('audit_events', "UPDATE audit_events SET actor = 'verdict-test' WHERE seq = 7000");
    assert.equal((await verdict()).ok, true);
  });

  it('a removed event and a forged checkpoint below the verified head fail as in a full verification', async () => {
    assert.equal((await verdict()).ok, true);
    await fx.asOwner('CREATE TABLE verdict_test_kept AS SELECT * FROM audit_events WHERE seq = 9000');
    await asOwnerOn('audit_events', 'DELETE FROM audit_events WHERE seq = 9000');
    const gap = await verdict();
    assert.equal(gap.ok, false);
    assert.equal(gap.firstBad?.seq, 9000);
    // Put back (the tables take inserts): the same rows as verified before.
    await fx.asOwner('INSERT INTO audit_events SELECT * FROM verdict_test_kept');
    assert.equal((await verdict()).ok, true);

    const [cp] = (await fx.asOwner('SELECT seq::int AS seq, signature FROM audit_checkpoints ORDER BY seq LIMIT 1')) as Array<{ seq: number; signature: string }>;
    const forged = `${cp.signature.slice(0, 10)}${cp.signature[10] === 'A' ? 'B' : 'A'}${cp.signature.slice(11)}`;
    await asOwnerOn('audit_checkpoints', `UPDATE audit_checkpoints SET signature = '${forged}' WHERE seq = ${cp.seq}`);
    const badCp = await verdict();
    assert.equal(badCp.ok, false);
    assert.equal(badCp.firstBad?.seq, cp.seq);
  });
});
