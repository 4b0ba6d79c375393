import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { api } from '@keyhub/protocol';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';

/**
 * Dual control end to end, through the real HTTPS API on real parts
 * (SoftHSM2, PostgreSQL): every claim an API answer makes about an action
 * (ran, did not run, ran once) is checked again in the database, as
 * distributions and their package/outbox rows per key version and listener,
 * the request row, and the audit events.
 */

type View = api.ApprovalRequestView;

interface QueuedRow {
  version: number;
  listener_id: string;
  target: string;
  packages: number;
  outbox: number;
}

interface AuditRow {
  actor: string;
  details: Record<string, string | number | boolean>;
}

function errorCode(r: ApiResponse): string | undefined {
  const body = r.body as { error?: { code?: string } } | undefined;
  return body?.error?.code;
}

function expectError(r: ApiResponse, status: number, code: string): void {
  assert.equal(errorCode(r), code, `expected ${code}, got HTTP ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(r.status, status);
}

function expectOk(r: ApiResponse, status = 200): void {
  assert.equal(r.status, status, `HTTP ${r.status} ${JSON.stringify(r.body)}`);
}

/** The calls and database checks every case uses, bound to one hub. */
function harness(h: ApiHub) {
  const tok = (name: string): string => {
    const t = h.tokens.get(name);
    if (!t) throw new Error(`no token for ${name}`);
    return t;
  };
  const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> => h.fx.rt.ds.query(text, params);

  return {
    tok,
    sql,
    async createKey(name: string): Promise<void> {
      const r = await h.call('POST', '/v1/keys', { token: tok('ko'), body: { name, algorithm: 'AES-256', sensitive: true } });
      expectOk(r, 201);
    },
    async enableSensitive(): Promise<void> {
      const r = await h.call('PUT', '/v1/policies/distribution.sensitive', { token: tok('admin'), body: { required: 2, enabled: true } });
      expectOk(r);
    },
    /** A distribute call that must become a request (202). */
    async request(by: string, keys: Array<{ name: string; version?: number }>, to: 'all' | string[]): Promise<View> {
      const body = { keys, to: to === 'all' ? 'all' : to.map((listenerId) => ({ listenerId })) };
      const r = await h.call('POST', '/v1/distributions', { token: tok(by), body });
      expectOk(r, 202);
      return (r.body as api.ApprovalPending).approval;
    },
    decide(by: string, id: string, decision: 'approve' | 'reject', hash: string): Promise<ApiResponse> {
      return h.call('POST', `/v1/approvals/${id}/${decision}`, { token: tok(by), body: { hash } });
    },
    async approve(by: string, v: View): Promise<View> {
      const r = await h.call('POST', `/v1/approvals/${v.id}/approve`, { token: tok(by), body: { hash: v.hash } });
      expectOk(r);
      return r.body as View;
    },
    async show(id: string): Promise<View> {
      const r = await h.call('GET', `/v1/approvals/${id}`, { token: tok('admin') });
      expectOk(r);
      return r.body as View;
    },
    /** Every distribution of a key, with how many package and outbox rows each has. */
    queued(key: string): Promise<QueuedRow[]> {
      return sql<QueuedRow>(
        `SELECT kv.version, d.listener_id, d.target,
                (SELECT count(*)::int FROM packages p WHERE p.distribution_id = d.id) AS packages,
                (SELECT count(*)::int FROM outbox o WHERE o.distribution_id = d.id) AS outbox
           FROM distributions d JOIN key_versions kv ON kv.id = d.key_version_id JOIN keys k ON k.id = kv.key_id
          WHERE k.name = $1 ORDER BY kv.version, d.listener_id, d.target`,
        [key],
      );
    },
    /** Exactly these (version, listener) pairs, target 'hsm', one package and one outbox row each. */
    async expectQueued(key: string, version: number, listeners: string[]): Promise<void> {
      const rows = await this.queued(key);
      assert.deepEqual(
        rows,
        [...listeners].sort().map((l) => ({ version, listener_id: l, target: 'hsm', packages: 1, outbox: 1 })),
        `distributions of ${key}`,
      );
    },
    async expectNothingQueued(key: string): Promise<void> {
      assert.deepEqual(await this.queued(key), [], `distributions of ${key}`);
    },
    async row(id: string): Promise<{ state: string; error_code: string | null; result: Record<string, unknown> | null }> {
      const [r] = await sql<{ state: string; error_code: string | null; result: Record<string, unknown> | null }>('SELECT state, error_code, result FROM approval_requests WHERE id = $1', [id]);
      return r;
    },
    audit(action: string, subject: string): Promise<AuditRow[]> {
      return sql<AuditRow>('SELECT actor, details FROM audit_events WHERE action = $1 AND subject = $2 ORDER BY seq', [action, subject]);
    },
    /** The single approval.executed event of a request, with its approvers as a sorted list. */
    async executedEvent(v: View): Promise<{ actor: string; hash: string; approvers: string[] }> {
      const events = await this.audit('approval.executed', `approval:${v.id}`);
      assert.equal(events.length, 1, `approval.executed events for ${v.id}`);
      const d = events[0].details;
      return { actor: events[0].actor, hash: String(d.hash), approvers: String(d.approvers).split(',').sort() };
    },
  };
}

describe('dual control: M-of-N approvals bound to the request hash, through the API', function () {
  const cleanup = new Cleanup();
  const S = listenerIds(4, 'dc');
  let h: ApiHub;
  let t: ReturnType<typeof harness>;
  let bootstrapRefusal: ApiResponse;

  before(async function () {
    this.timeout(120_000);
    h = await createApiHub(cleanup);
    t = harness(h);
    await insertActiveListeners(h.fx, S);
    await h.operator('ko', ['key-officer']);
    // Requests and can approve: only someone else's request.
    await h.operator('kap', ['key-officer', 'approver']);
    await h.operator('x1', ['auditor']);
    // One active approver (kap) for a policy of 2: the policy cannot be switched on yet.
    bootstrapRefusal = await h.call('PUT', '/v1/policies/distribution.sensitive', { token: t.tok('admin'), body: { required: 2, enabled: true } });
    for (const a of ['a1', 'a2', 'a3', 'a4']) await h.operator(a, ['approver']);
    await t.enableSensitive();
    const keys = ['self', 'one', 'two-a', 'two-b', 'bind', 'rej', 'revoked', 'tamper', ...Array.from({ length: 5 }, (_, i) => `race-${i + 1}`)];
    for (const k of keys) await t.createKey(k);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  it('refuses the requester approving (or rejecting) their own request, even as an approver; nothing is queued', async function () {
    const v = await t.request('kap', [{ name: 'self' }], 'all');
    assert.equal(v.state, 'pending');
    assert.equal(v.required, 2);
    expectError(await t.decide('kap', v.id, 'approve', v.hash), 403, 'APPROVAL_SELF');
    expectError(await t.decide('kap', v.id, 'reject', v.hash), 403, 'APPROVAL_SELF');
    const now = await t.show(v.id);
    assert.equal(now.state, 'pending');
    assert.equal(now.decisions.length, 0);
    assert.equal((await t.sql<{ n: number }>('SELECT count(*)::int AS n FROM approval_decisions WHERE request_id = $1', [v.id]))[0].n, 0);
    await t.expectNothingQueued('self');
    // The requester may withdraw it; then it is over.
    expectOk(await h.call('POST', `/v1/approvals/${v.id}/cancel`, { token: t.tok('kap') }));
    assert.equal((await t.row(v.id)).state, 'cancelled');
  });

  it('does not run on one approval, and one approver cannot count twice', async function () {
    const v = await t.request('ko', [{ name: 'one' }], 'all');
    const after1 = await t.approve('a1', v);
    assert.equal(after1.state, 'pending');
    assert.equal(after1.approvals, 1);
    expectError(await t.decide('a1', v.id, 'approve', v.hash), 409, 'APPROVAL_DUPLICATE');
    const now = await t.show(v.id);
    assert.equal(now.state, 'pending');
    assert.equal(now.approvals, 1);
    assert.deepEqual(
      now.decisions.map((d) => [d.operator, d.decision, d.counts]),
      [['a1', 'approve', true]],
    );
    assert.equal((await t.row(v.id)).state, 'pending');
    await t.expectNothingQueued('one');
    assert.equal((await t.audit('approval.executed', `approval:${v.id}`)).length, 0);
  });

  it('runs on two distinct approvals, once: keys x destinations, one package and outbox row each', async function () {
    const v = await t.request('ko', [{ name: 'two-a' }, { name: 'two-b' }], 'all');
    const doc = JSON.parse(v.canonical) as { keys: Array<{ name: string; version: number }>; destinations: Array<{ listenerId: string; target: string }> };
    assert.deepEqual(
      doc.keys.map((k) => [k.name, k.version]),
      [
        ['two-a', 1],
        ['two-b', 1],
      ],
    );
    assert.deepEqual(
      doc.destinations.map((d) => `${d.listenerId}/${d.target}`).sort(),
      S.map((s) => `${s}/hsm`),
    );
    assert.equal((await t.approve('a1', v)).state, 'pending');
    await t.expectNothingQueued('two-a');
    const done = await t.approve('a2', v);
    assert.equal(done.state, 'executed');
    assert.deepEqual(done.result, { queued: 2 * S.length, skipped: 0 });
    await t.expectQueued('two-a', 1, S);
    await t.expectQueued('two-b', 1, S);
    assert.equal((await t.row(v.id)).state, 'executed');
    const ev = await t.executedEvent(v);
    assert.equal(ev.hash, v.hash);
    assert.equal(ev.actor, 'ko');
    assert.deepEqual(ev.approvers, ['a1', 'a2']);
    // A third approval after execution changes nothing.
    expectError(await t.decide('a3', v.id, 'approve', v.hash), 409, 'APPROVAL_STATE_INVALID');
    await t.expectQueued('two-a', 1, S);
    await t.expectQueued('two-b', 1, S);
    assert.equal((await t.audit('approval.executed', `approval:${v.id}`)).length, 1);
  });

  it('binds an approval to its hash: it authorizes neither other sites nor another key version', async function () {
    const [s1, s2, s3] = S;
    const a = await t.request('ko', [{ name: 'bind' }], [s1, s2]);
    const b = await t.request('ko', [{ name: 'bind' }], [s1, s3]);
    assert.notEqual(a.hash, b.hash);
    // An approval given with the hash of A is refused on B and recorded nowhere.
    expectError(await t.decide('a1', b.id, 'approve', a.hash), 409, 'APPROVAL_HASH_MISMATCH');
    assert.equal((await t.show(b.id)).decisions.length, 0);

    await t.approve('a1', a);
    assert.equal((await t.approve('a2', a)).state, 'executed');
    await t.expectQueued('bind', 1, [s1, s2]);
    const bNow = await t.show(b.id);
    assert.equal(bNow.state, 'pending');
    assert.equal(bNow.approvals, 0);

    // A version 2 (no rotation yet: a row copied from version 1, made current).
    await t.sql(
      `INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state)
       SELECT $2, kv.key_id, 2, kv.wrapped, kv.length, kv.kcv, kv.state FROM key_versions kv JOIN keys k ON k.id = kv.key_id WHERE k.name = $1 AND kv.version = 1`,
      ['bind', randomUUID()],
    );
    await t.sql('UPDATE keys SET current_version = 2 WHERE name = $1', ['bind']);
    const c = await t.request('ko', [{ name: 'bind' }], [s1, s2]);
    const cDoc = JSON.parse(c.canonical) as { keys: Array<{ name: string; version: number }> };
    assert.deepEqual(
      cDoc.keys.map((k) => k.version),
      [2],
      'the request names the version resolved when it was made',
    );
    assert.notEqual(c.hash, a.hash);
    expectError(await t.decide('a1', c.id, 'approve', a.hash), 409, 'APPROVAL_HASH_MISMATCH');
    assert.equal((await t.show(c.id)).approvals, 0);
    // Still only what A named: version 1 at s1 and s2.
    await t.expectQueued('bind', 1, [s1, s2]);

    for (const v of [b, c]) {
      expectOk(await h.call('POST', `/v1/approvals/${v.id}/cancel`, { token: t.tok('ko') }));
      assert.equal((await t.row(v.id)).state, 'cancelled');
    }
    await t.expectQueued('bind', 1, [s1, s2]);
  });

  it('never runs a rejected request', async function () {
    const v = await t.request('ko', [{ name: 'rej' }], 'all');
    await t.approve('a1', v);
    const r = await t.decide('a2', v.id, 'reject', v.hash);
    expectOk(r);
    assert.equal((r.body as View).state, 'rejected');
    expectError(await t.decide('a3', v.id, 'approve', v.hash), 409, 'APPROVAL_STATE_INVALID');
    expectError(await t.decide('a4', v.id, 'approve', v.hash), 409, 'APPROVAL_STATE_INVALID');
    assert.equal((await t.show(v.id)).state, 'rejected');
    assert.equal((await t.row(v.id)).state, 'rejected');
    await t.expectNothingQueued('rej');
    assert.equal((await t.audit('approval.executed', `approval:${v.id}`)).length, 0);
  });

  it('runs exactly once when two approvers race to give the last approval (5 rounds)', async function () {
    this.timeout(60_000);
    let bothAccepted = 0;
    for (let i = 1; i <= 5; i++) {
      const key = `race-${i}`;
      const v = await t.request('ko', [{ name: key }], 'all');
      await t.approve('a1', v);
      const answers = await Promise.all([t.decide('a2', v.id, 'approve', v.hash), t.decide('a3', v.id, 'approve', v.hash)]);
      // The later one either got its decision in before the execution claimed the request, or found it executed.
      for (const r of answers) if (r.status !== 200) expectError(r, 409, 'APPROVAL_STATE_INVALID');
      assert.ok(answers.some((r) => r.status === 200));
      if (answers.every((r) => r.status === 200)) bothAccepted++;
      assert.equal((await t.row(v.id)).state, 'executed');
      await t.expectQueued(key, 1, S);
      const ev = await t.executedEvent(v);
      assert.ok(ev.approvers.includes('a1') && ev.approvers.length >= 2, `approvers ${ev.approvers.join(',')}`);
    }
    // Informational: how often both decisions were recorded before the claim.
    this.test!.title += ` [both decisions recorded in ${bothAccepted}/5]`;
  });

  it('stops counting the approval of an approver revoked before execution', async function () {
    const v = await t.request('ko', [{ name: 'revoked' }], 'all');
    await t.approve('a4', v);
    const revoke = await h.call('POST', '/v1/operators/a4/revoke', { token: t.tok('admin') });
    expectOk(revoke);
    const now = await t.show(v.id);
    assert.equal(now.approvals, 0);
    assert.deepEqual(
      now.decisions.map((d) => [d.operator, d.counts]),
      [['a4', false]],
    );
    assert.equal((await t.approve('a2', v)).state, 'pending');
    await t.expectNothingQueued('revoked');
    assert.equal((await t.approve('a3', v)).state, 'executed');
    await t.expectQueued('revoked', 1, S);
    const ev = await t.executedEvent(v);
    assert.deepEqual(ev.approvers, ['a2', 'a3']);
  });

  it('detects a stored request changed behind the API: failed with APPROVAL_HASH_MISMATCH, nothing runs', async function () {
    const [s1, s2, , s4] = S;
    const v = await t.request('ko', [{ name: 'tamper' }], [s1, s2]);
    await t.approve('a1', v);
    // Someone with database access swaps a destination.
    await t.sql(`UPDATE approval_requests SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), $2, $3), 'UTF8') WHERE id = $1`, [v.id, s2, s4]);
    assert.ok((await t.show(v.id)).canonical.includes(s4));
    const r = await t.decide('a2', v.id, 'approve', v.hash);
    expectOk(r);
    assert.equal((r.body as View).state, 'failed');
    assert.equal((r.body as View).errorCode, 'APPROVAL_HASH_MISMATCH');
    const row = await t.row(v.id);
    assert.equal(row.state, 'failed');
    assert.equal(row.error_code, 'APPROVAL_HASH_MISMATCH');
    await t.expectNothingQueued('tamper');
    assert.equal((await t.audit('approval.tampered', `approval:${v.id}`)).length, 1);
    assert.equal((await t.audit('approval.executed', `approval:${v.id}`)).length, 0);
  });

  it('bootstraps policies: not enabled without M active approvers; once on, lifting it needs its own quorum; revocation never waits', async function () {
    expectError(bootstrapRefusal, 409, 'POLICY_QUORUM_UNAVAILABLE');
    const policies = async (): Promise<api.PolicyView[]> => {
      const r = await h.call('GET', '/v1/policies', { token: t.tok('admin') });
      expectOk(r);
      return (r.body as { policies: api.PolicyView[] }).policies;
    };
    const manage = async (): Promise<api.PolicyView> => (await policies()).find((p) => p.action === 'operator.manage')!;
    // Active approvers now: kap, a1, a2, a3 (a4 was revoked).
    const approvers = (await policies())[0].approvers;
    assert.equal(approvers, 4);
    expectError(await h.call('PUT', '/v1/policies/operator.manage', { token: t.tok('admin'), body: { required: approvers + 1, enabled: true } }), 409, 'POLICY_QUORUM_UNAVAILABLE');
    assert.equal((await manage()).enabled, false);
    expectOk(await h.call('PUT', '/v1/policies/operator.manage', { token: t.tok('admin'), body: { required: 2, enabled: true } }));
    assert.deepEqual([(await manage()).enabled, (await manage()).required], [true, 2]);

    // Revoking an operator is not an operator.manage request: it is immediate.
    const revoke = await h.call('POST', '/v1/operators/x1/revoke', { token: t.tok('admin') });
    expectOk(revoke);
    assert.equal((revoke.body as api.OperatorView).state, 'revoked');
    const [x1] = await t.sql<{ state: string }>("SELECT state FROM operators WHERE name = 'x1'");
    assert.equal(x1.state, 'revoked');
    assert.equal((await h.call('GET', '/v1/auth/whoami', { token: t.tok('x1') })).status, 401);
    // So is revoking a single token, and it says so and leaves its audit event.
    const own = await h.call('POST', '/v1/tokens', { token: t.tok('a3'), body: { description: 'spare' } });
    expectOk(own, 201);
    const spare = (own.body as { token: api.IssuedToken }).token;
    const revokeToken = await h.call('POST', `/v1/tokens/${spare.id}/revoke`, { token: t.tok('admin') });
    expectOk(revokeToken);
    assert.deepEqual(revokeToken.body, { revoked: true });
    assert.equal((await t.audit('token.revoked', `token:${spare.id}`)).length, 1);
    assert.equal((await h.call('GET', '/v1/auth/whoami', { token: spare.token })).status, 401);
    assert.deepEqual((await h.call('POST', `/v1/tokens/${spare.id}/revoke`, { token: t.tok('admin') })).body, { revoked: false });
    assert.equal((await t.audit('token.revoked', `token:${spare.id}`)).length, 1);

    // Switching it off needs its own 2 approvals.
    const off = await h.call('PUT', '/v1/policies/operator.manage', { token: t.tok('admin'), body: { enabled: false } });
    expectOk(off, 202);
    const req = (off.body as api.ApprovalPending).approval;
    assert.equal(req.action, 'approval_policy.update');
    assert.equal(req.required, 2);
    assert.equal((await manage()).enabled, true);
    assert.equal((await t.approve('a1', req)).state, 'pending');
    assert.equal((await manage()).enabled, true);
    assert.equal((await t.approve('a2', req)).state, 'executed');
    assert.equal((await manage()).enabled, false);
    const [updated] = await t.audit('policy.updated', 'policy:operator.manage').then((e) => e.slice(-1));
    assert.equal(updated.details.enabled, false);
    assert.deepEqual(String(updated.details.approvers).split(',').sort(), ['a1', 'a2']);
  });

  it('under operator.manage, creates an operator only after approval; the requester picks the token up once; its secret is stored nowhere', async function () {
    expectOk(await h.call('PUT', '/v1/policies/operator.manage', { token: t.tok('admin'), body: { required: 2, enabled: true } }));
    const created = await h.call('POST', '/v1/operators', { token: t.tok('admin'), body: { name: 'newbie', roles: ['auditor'] } });
    expectOk(created, 202);
    const v = (created.body as api.ApprovalPending).approval;
    assert.equal((await t.sql<{ n: number }>("SELECT count(*)::int AS n FROM operators WHERE name = 'newbie'"))[0].n, 0);
    expectError(await h.call('POST', `/v1/approvals/${v.id}/pickup`, { token: t.tok('admin') }), 409, 'PICKUP_UNAVAILABLE');
    await t.approve('a1', v);
    const done = await t.approve('a2', v);
    assert.equal(done.state, 'executed');
    const tokenId = done.result?.tokenId;
    assert.equal(typeof tokenId, 'string');

    // Only the requester, and only once.
    expectError(await h.call('POST', `/v1/approvals/${v.id}/pickup`, { token: t.tok('a1') }), 409, 'PICKUP_UNAVAILABLE');
    const picked = await h.call('POST', `/v1/approvals/${v.id}/pickup`, { token: t.tok('admin') });
    expectOk(picked);
    const issued = (picked.body as { token: api.IssuedToken }).token;
    assert.equal(issued.id, tokenId);
    assert.equal(issued.operator, 'newbie');
    const who = await h.call('GET', '/v1/auth/whoami', { token: issued.token });
    expectOk(who);
    assert.equal((who.body as api.Whoami).operator.name, 'newbie');
    assert.deepEqual((who.body as api.Whoami).roles, ['auditor']);
    expectError(await h.call('POST', `/v1/approvals/${v.id}/pickup`, { token: t.tok('admin') }), 409, 'PICKUP_UNAVAILABLE');
    expectError(await h.call('POST', `/v1/approvals/${v.id}/pickup`, { token: t.tok('a1') }), 409, 'PICKUP_UNAVAILABLE');

    // The secret is nowhere in the database, in text or as bytes; its id is.
    const parsed = api.parseApiToken(issued.token);
    assert.ok(parsed);
    const secretHex = Buffer.from(parsed.secret, 'utf8').toString('hex');
    const tables = (await t.sql<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")).map((r) => r.table_name);
    for (const must of ['approval_requests', 'audit_events', 'api_tokens']) assert.ok(tables.includes(must), must);
    for (const table of tables) {
      const hits: Array<{ n: number }> = await t.sql(`SELECT count(*)::int AS n FROM "${table}" AS r WHERE strpos(r::text, $1) > 0 OR strpos(r::text, $2) > 0`, [parsed.secret, secretHex]);
      assert.equal(hits[0].n, 0, `token secret found in ${table}`);
    }
    const [req] = await t.sql<{ result: string; canonical: string }>("SELECT result::text AS result, convert_from(canonical, 'UTF8') AS canonical FROM approval_requests WHERE id = $1", [v.id]);
    assert.ok(req.result.includes(parsed.id));
    assert.ok(!req.result.includes(parsed.secret) && !req.canonical.includes(parsed.secret));
    const [stored] = await t.sql<{ secret_hash: Buffer }>('SELECT secret_hash FROM api_tokens WHERE id = $1', [parsed.id]);
    assert.ok(stored.secret_hash.length === 32 && !stored.secret_hash.toString('latin1').includes(parsed.secret));
    assert.equal((await t.audit('token.picked_up', `token:${parsed.id}`)).length, 1);
  });
});

describe('dual control: approvals expire', function () {
  const cleanup = new Cleanup();
  const S = listenerIds(2, 'dce');
  let h: ApiHub;
  let t: ReturnType<typeof harness>;

  before(async function () {
    this.timeout(120_000);
    h = await createApiHub(cleanup, { approvals: { approvalTtlSeconds: 2 } });
    t = harness(h);
    await insertActiveListeners(h.fx, S);
    await h.operator('ko', ['key-officer']);
    for (const a of ['a1', 'a2', 'a3']) await h.operator(a, ['approver']);
    await t.enableSensitive();
    await t.createKey('exp');
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  it('does not count an approval past its lifetime', async function () {
    const v = await t.request('ko', [{ name: 'exp' }], 'all');
    await t.approve('a1', v);
    await sleep(2_300);
    const now = await t.show(v.id);
    assert.deepEqual(
      now.decisions.map((d) => [d.operator, d.counts]),
      [['a1', false]],
    );
    assert.equal(now.approvals, 0);
    const after2 = await t.approve('a2', v);
    assert.equal(after2.state, 'pending');
    assert.equal(after2.approvals, 1);
    await t.expectNothingQueued('exp');
    assert.equal((await t.approve('a3', v)).state, 'executed');
    await t.expectQueued('exp', 1, S);
    assert.deepEqual((await t.executedEvent(v)).approvers, ['a2', 'a3']);
  });
});
