import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MESSAGE_TYPES, type RootKekConfirm } from '@keyhub/protocol';
import { ConfirmRootKek } from '@keyhub/hub/dist/operations/listeners/confirm-root-kek';
import { FinishDecommission } from '@keyhub/hub/dist/operations/listeners/finish-decommission';
import { insertActiveListeners } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';

/**
 * Site lifecycle rules at the hub, on real PostgreSQL and a real SoftHSM2
 * hub token, without NATS (the API writes the outbox; confirmations are fed
 * to the operation the UP handler calls): a rotation refused by KCV is never
 * used, one rotation at a time, no rotation while packages under the older
 * KEK are in flight, and a decommission whose site never answers its
 * destroys is finished at the operator's deadline, with the destroys
 * recorded as outstanding.
 */
describe('site lifecycle at the hub (API, PostgreSQL, SoftHSM2)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  let ko = '';

  const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> => h.fx.rt.ds.query(text, params);
  const code = (r: ApiResponse): string | undefined => (r.body as { error?: { code?: string } } | undefined)?.error?.code;
  const post = (path: string, body: unknown = {}): Promise<ApiResponse> => h.call('POST', path, { token: ko, body });
  const keks = (site: string) =>
    sql<{ id: string; version: number; state: string; kcv: string; len: number }>(`SELECT id, version, state, kcv, length(wrapped)::int AS len FROM keks WHERE listener_id = $1 ORDER BY version`, [
      site,
    ]);
  const confirm = (site: string, k: { id: string; version: number }, kcv: string): Promise<string> => {
    const msg: RootKekConfirm = { type: MESSAGE_TYPES.rootKekConfirm, id: randomUUID(), listenerId: site, issuedAt: new Date().toISOString(), kekId: k.id, kekVersion: k.version, kcv };
    return h.fx.rt.container.resolve(ConfirmRootKek).execute(msg);
  };

  before(async function () {
    h = await createApiHub(cleanup);
    await insertActiveListeners(h.fx, ['lc-rot', 'lc-busy', 'lc-gone', 'lc-dc', 'lc-tk']);
    ko = await h.operator('ko', ['key-officer']);
  });

  after(async function () {
    await cleanup.run();
  });

  it('a rotation whose KCV does not match is refused for good (revoked, blob wiped, audited); the next one activates and retires the old KEK', async () => {
    const first = await post('/v1/listeners/lc-rot/rotate-kek');
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const v2 = first.body as { kekId: string; version: number; kcv: string };
    assert.equal(v2.version, 2);
    const outbox = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE subject = 'keyhub.v1.to.lc-rot.root_kek'`);
    assert.equal(outbox[0].n, 1, 'the rotation message is queued on the root_kek subject');
    // One at a time.
    const again = await post('/v1/listeners/lc-rot/rotate-kek');
    assert.deepEqual([again.status, code(again)], [409, 'KEK_ROTATION_PENDING']);

    const wrong = v2.kcv === '000000' ? '000001' : '000000';
    assert.equal(await confirm('lc-rot', { id: v2.kekId, version: 2 }, wrong), 'kcv_mismatch');
    assert.deepEqual(
      (await keks('lc-rot')).map((k) => [k.version, k.state, k.len > 0]),
      [
        [1, 'active', true],
        [2, 'revoked', false],
      ],
    );
    assert.equal((await sql(`SELECT 1 FROM audit_events WHERE action = 'kek.rotation_refused' AND subject = 'listener:lc-rot'`)).length, 1);
    // The refused KEK stays refused, even with the right KCV later.
    await assert.rejects(confirm('lc-rot', { id: v2.kekId, version: 2 }, v2.kcv), /KEK|revoked/);

    const second = await post('/v1/listeners/lc-rot/rotate-kek');
    assert.equal(second.status, 202, JSON.stringify(second.body));
    const v3 = second.body as { kekId: string; version: number; kcv: string; wrappedUnder: { version: number } };
    assert.deepEqual([v3.version, v3.wrappedUnder.version], [3, 1]);
    assert.equal(await confirm('lc-rot', { id: v3.kekId, version: 3 }, v3.kcv), 'rotated');
    assert.equal(await confirm('lc-rot', { id: v3.kekId, version: 3 }, v3.kcv), 'already_active');
    assert.deepEqual(
      (await keks('lc-rot')).map((k) => [k.version, k.state]),
      [
        [1, 'retired'],
        [2, 'revoked'],
        [3, 'active'],
      ],
    );
  });

  it("a rotation is refused while packages issued under the site's previous KEK are unconfirmed (that rotation would make the site drop it)", async () => {
    const key = await h.call('POST', '/v1/keys', { token: ko, body: { name: 'lc-busy-key', algorithm: 'AES-256' } });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const dist = await post('/v1/distributions', { keys: [{ name: 'lc-busy-key' }], to: [{ listenerId: 'lc-busy' }] });
    assert.equal(dist.status, 200, JSON.stringify(dist.body));
    // Packages issued under v1 are in flight: a rotation to v2 is fine (the site keeps v1 as its previous KEK) ...
    const v2 = await post('/v1/listeners/lc-busy/rotate-kek');
    assert.equal(v2.status, 202, JSON.stringify(v2.body));
    const k2 = v2.body as { kekId: string; kcv: string };
    assert.equal(await confirm('lc-busy', { id: k2.kekId, version: 2 }, k2.kcv), 'rotated');
    // ... but not to v3 while they are unconfirmed: v3's install destroys v1 at the site.
    const v3 = await post('/v1/listeners/lc-busy/rotate-kek');
    assert.deepEqual([v3.status, code(v3)], [409, 'KEK_ROTATION_BLOCKED']);
    assert.equal((await keks('lc-busy')).length, 2, 'no KEK row was made');
  });

  it('a decommission whose site never answers is finished at the deadline, with its destroys recorded as outstanding', async () => {
    const key = await h.call('POST', '/v1/keys', { token: ko, body: { name: 'lc-gone-key', algorithm: 'AES-256' } });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    assert.equal((await post('/v1/distributions', { keys: [{ name: 'lc-gone-key' }], to: [{ listenerId: 'lc-gone' }] })).status, 200);
    // As if its receipt had come: the site holds it.
    await h.fx.asOwner(`UPDATE distributions SET state = 'confirmed', confirmed_at = now() WHERE listener_id = 'lc-gone'`);
    const r = await post('/v1/listeners/lc-gone/decommission', { timeoutSeconds: 1, reason: 'integration' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const body = r.body as { state: string; destroyCommands: number; heldOnlyHere: Array<{ keyName: string }> };
    assert.equal(body.state, 'decommissioning');
    assert.equal(body.destroyCommands, 1);
    assert.deepEqual(
      body.heldOnlyHere.map((k) => k.keyName),
      ['lc-gone-key'],
    );
    const finish = h.fx.rt.container.resolve(FinishDecommission);
    assert.equal(await finish.runDue(), 0, 'not due before its deadline while the destroy is unanswered');
    await sleep(1100);
    assert.equal(await finish.runDue(), 1);
    assert.equal(await finish.runDue(), 0, 'finished once');
    assert.deepEqual(await sql(`SELECT state FROM listeners WHERE id = 'lc-gone'`), [{ state: 'decommissioned' }]);
    // Released: no later command or rotation addresses a site that is gone (site_key_records keeps what it held).
    assert.deepEqual(await sql(`SELECT state, error_code FROM distributions WHERE listener_id = 'lc-gone'`), [{ state: 'superseded', error_code: 'LISTENER_DECOMMISSIONED' }]);
    assert.equal((await sql(`SELECT 1 FROM site_key_records r JOIN site_lifecycle_events e ON e.id = r.event_id WHERE e.listener_id = 'lc-gone'`)).length, 1);
    const done = await sql<{ details: { destroysOutstanding: number; forced: boolean } }>(`SELECT details FROM audit_events WHERE action = 'listener.decommissioned' AND subject = 'listener:lc-gone'`);
    assert.deepEqual([done[0].details.destroysOutstanding, done[0].details.forced], [1, false]);
    // Asking again reports the record; nothing changes.
    const again = await post('/v1/listeners/lc-gone/decommission', {});
    assert.equal((again.body as { state: string }).state, 'decommissioned');
    assert.equal((await sql(`SELECT 1 FROM audit_events WHERE action = 'listener.decommissioned' AND subject = 'listener:lc-gone'`)).length, 1);
  });

  it("a decommission revokes the site's target KEKs too: blobs gone, each audited", async () => {
    const row = (target: string, state: string) => [randomUUID(), 'lc-tk', target, 1, state, Buffer.from('spki'), 'sha1', 'fp', randomUUID(), Buffer.alloc(40, 7), 'abcdef', Buffer.alloc(32, 1)];
    for (const [target, state] of [
      ['vault-a', 'active'],
      ['vault-b', 'pending_confirmation'],
      ['vault-c', 'superseded'],
    ]) {
      await h.fx.asOwner(
        `INSERT INTO target_keks (id, listener_id, target, version, state, transport_key, oaep_hash, fingerprint, request_id, wrapped, kcv, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        row(target, state),
      );
    }
    const r = await post('/v1/listeners/lc-tk/decommission', { force: true, reason: 'target keks' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await sql(`SELECT target, state, wrapped IS NULL AS gone FROM target_keks WHERE listener_id = 'lc-tk' ORDER BY target`), [
      { target: 'vault-a', state: 'revoked', gone: true },
      { target: 'vault-b', state: 'revoked', gone: true },
      { target: 'vault-c', state: 'superseded', gone: false },
    ]);
    const audited = await sql<{ details: { target: string; previousState: string } }>(
      `SELECT details FROM audit_events WHERE action = 'target_kek.revoked' AND subject = 'listener:lc-tk' ORDER BY seq`,
    );
    assert.deepEqual(
      audited.map((a) => [a.details.target, a.details.previousState]),
      [
        ['vault-a', 'active'],
        ['vault-b', 'pending_confirmation'],
      ],
    );
  });

  it('under the listener.decommission policy a decommission is a request: nothing changes until an approver approves it', async () => {
    const ap = await h.operator('ap1', ['approver']);
    const policy = await h.call('PUT', '/v1/policies/listener.decommission', { token: h.tokens.get('admin'), body: { required: 1, enabled: true } });
    assert.equal(policy.status, 200, JSON.stringify(policy.body));
    const r = await post('/v1/listeners/lc-dc/decommission', { force: true, reason: 'dual control' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const { approval } = r.body as { approval: { id: string; hash: string; summary: string } };
    assert.match(approval.summary, /decommission listener lc-dc/);
    assert.deepEqual(await sql(`SELECT state FROM listeners WHERE id = 'lc-dc'`), [{ state: 'active' }]);
    assert.deepEqual(
      (await keks('lc-dc')).map((k) => k.state),
      ['active'],
    );
    const ok = await h.call('POST', `/v1/approvals/${approval.id}/approve`, { token: ap, body: { hash: approval.hash } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(await sql(`SELECT state FROM listeners WHERE id = 'lc-dc'`), [{ state: 'decommissioned' }]);
    const started = await sql<{ actor: string; details: { approvers: string } }>(
      `SELECT actor, details FROM audit_events WHERE action = 'listener.decommission_started' AND subject = 'listener:lc-dc'`,
    );
    assert.deepEqual([started[0].actor, started[0].details.approvers], ['ko', 'ap1']);
  });
});
