import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { MESSAGE_TYPES, type api, type Receipt } from '@keyhub/protocol';
import { ApplyReceipt } from '@keyhub/hub/dist/operations/distributions/apply-receipts';
import { ResendDue } from '@keyhub/hub/dist/operations/distributions/resend-due';
import { RunKeySchedule } from '@keyhub/hub/dist/operations/keys/run-key-schedule';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { makeTempDir, run } from '../env';
import { HUB_CLI } from '../harness/deployment';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';

/**
 * Key version states through the real HTTPS API on real parts (SoftHSM2,
 * PostgreSQL): every answer is checked again in the database (version rows,
 * distributions with their packages and outbox rows, site commands, audit
 * events). The scheduler's work is run here by calling its operation; the
 * two-replica timing is key-lifecycle-replicas.test.ts.
 */

function expectStatus(r: ApiResponse, status: number): void {
  assert.equal(r.status, status, `HTTP ${r.status} ${JSON.stringify(r.body)}`);
}

function expectError(r: ApiResponse, status: number, code: string): void {
  const got = (r.body as { error?: { code?: string } } | undefined)?.error?.code;
  assert.equal(got, code, `expected ${code}, got HTTP ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(r.status, status);
}

describe('key lifecycle through the API: NIST SP 800-57 states, rotation, grace, dual-control destroy', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  const [L1, L2, L3] = listenerIds(3, 'life');
  let h: ApiHub;
  const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> => h.fx.rt.ds.query(text, params);
  const ko = (): string => h.tokens.get('ko')!;
  const call = (method: string, path: string, body?: unknown, token = ko()): Promise<ApiResponse> => h.call(method, path, { token, body });
  const state = (key: string, body: api.KeyStateBody, token = ko()): Promise<ApiResponse> => call('POST', `/v1/keys/${encodeURIComponent(key)}/state`, body, token);
  const createKey = async (name: string, extra: Record<string, unknown> = {}): Promise<void> => expectStatus(await call('POST', '/v1/keys', { name, algorithm: 'AES-256', ...extra }), 201);
  const distribute = async (name: string, to: string[]): Promise<void> =>
    expectStatus(await call('POST', '/v1/distributions', { keys: [{ name }], to: to.map((listenerId) => ({ listenerId })) }), 200);
  const versionRow = async (name: string, version: number) =>
    (
      await sql<{ state: string; wrapped_len: number; deactivate_at: Date | null; destroyed_at: Date | null }>(
        `SELECT v.state, length(v.wrapped)::int AS wrapped_len, v.deactivate_at, v.destroyed_at FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = $1 AND v.version = $2`,
        [name, version],
      )
    )[0];
  const stateEvents = (name: string, to: string) =>
    sql<{ actor: string; details: Record<string, unknown> }>(`SELECT actor, details FROM audit_events WHERE action = 'key.state_changed' AND subject = $1 AND details->>'to' = $2 ORDER BY seq`, [
      `key:${name}`,
      to,
    ]);
  const commands = (name: string, version: number) =>
    sql<{ listener_id: string; target: string; action: string }>(
      `SELECT c.listener_id, c.target, c.action FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name = $1 AND v.version = $2 ORDER BY c.listener_id, c.action`,
      [name, version],
    );
  const distributions = (name: string) =>
    sql<{ version: number; listener_id: string; target: string; packages: number; outbox: number }>(
      `SELECT v.version, d.listener_id, d.target,
              (SELECT count(*)::int FROM packages p WHERE p.distribution_id = d.id) AS packages,
              (SELECT count(*)::int FROM outbox o WHERE o.distribution_id = d.id) AS outbox
         FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name = $1 ORDER BY v.version, d.listener_id`,
      [name],
    );

  before(async () => {
    h = await createApiHub(cleanup);
    await insertActiveListeners(h.fx, [L1, L2, L3]);
    await h.operator('ko', ['key-officer']);
    await h.operator('ap1', ['approver']);
    await h.operator('ap2', ['approver']);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  it('suspend, resume, deactivate, destroy: each allowed step changes the version, is audited once and commands the sites; refused steps change nothing', async () => {
    await createKey('life/steps');
    await distribute('life/steps', [L1, L2]);
    // Refused: SP 800-57 has no active -> destroyed and no resume of an active version.
    expectError(await state('life/steps', { action: 'destroy' }), 409, 'KEY_STATE_TRANSITION_INVALID');
    expectError(await state('life/steps', { action: 'resume' }), 409, 'KEY_STATE_TRANSITION_INVALID');
    assert.equal((await versionRow('life/steps', 1)).state, 'active');

    const s = await state('life/steps', { action: 'suspend', reason: 'investigation 42' });
    expectStatus(s, 200);
    assert.deepEqual(s.body, { key: 'life/steps', version: 1, from: 'active', to: 'suspended', sites: 2 });
    // A suspended version is not distributed.
    expectError(await call('POST', '/v1/distributions', { keys: [{ name: 'life/steps' }], to: [{ listenerId: L3 }] }), 409, 'KEY_VERSION_NOT_ACTIVE');
    // Refused: a suspended version is deactivated before it can be destroyed.
    expectError(await state('life/steps', { action: 'destroy' }), 409, 'KEY_STATE_TRANSITION_INVALID');
    expectStatus(await state('life/steps', { action: 'resume' }), 200);
    expectStatus(await state('life/steps', { action: 'deactivate', version: 1 }), 200);
    const d = await state('life/steps', { action: 'destroy', reason: 'end of retention' });
    expectStatus(d, 200);
    assert.equal((d.body as api.KeyStateResult).to, 'destroyed');
    // Terminal: nothing follows destroyed.
    expectError(await state('life/steps', { action: 'compromise' }), 409, 'KEY_STATE_TRANSITION_INVALID');

    const row = await versionRow('life/steps', 1);
    assert.equal(row.state, 'destroyed');
    assert.equal(row.wrapped_len, 0, 'the destroyed version keeps no wrapped material at the hub');
    assert.ok(row.destroyed_at);
    for (const to of ['suspended', 'active', 'deactivated', 'destroyed']) assert.equal((await stateEvents('life/steps', to)).length, 1, `one audit event for -> ${to}`);
    const suspended = (await stateEvents('life/steps', 'suspended'))[0];
    assert.equal(suspended.actor, 'ko');
    assert.equal(suspended.details.reason, 'investigation 42');
    assert.deepEqual(
      (await commands('life/steps', 1)).map((c) => `${c.listener_id}:${c.action}`),
      [L1, L2].flatMap((l) => ['deactivate', 'destroy', 'resume', 'suspend'].map((a) => `${l}:${a}`)),
      'each change reached both sites that hold the version, once',
    );
    const [{ state: keyState }] = await sql<{ state: string }>(`SELECT state FROM keys WHERE name = 'life/steps'`);
    assert.equal(keyState, 'destroyed', "the key row's summary follows its current version");
  });

  it('compromise: at once (no policy), on the urgent lane to every holder, never distributed again; rotation replaces it at the same sites; the record survives destruction', async () => {
    await createKey('life/comp');
    await distribute('life/comp', [L1, L2]);
    const c = await state('life/comp', { action: 'compromise', reason: 'key file found on a laptop' });
    expectStatus(c, 200);
    assert.deepEqual(c.body, { key: 'life/comp', version: 1, from: 'active', to: 'compromised', sites: 2 });
    const urgent = await sql<{ listener_id: string; urgent: boolean }>(
      `SELECT c.listener_id, c.urgent FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = 'life/comp' ORDER BY 1`,
    );
    assert.deepEqual(
      urgent.map((u) => [u.listener_id, u.urgent]),
      [
        [L1, true],
        [L2, true],
      ],
    );
    expectError(await call('POST', '/v1/distributions', { keys: [{ name: 'life/comp', version: 1 }], to: [{ listenerId: L3 }] }), 409, 'KEY_VERSION_NOT_ACTIVE');
    // Nothing returns from compromised but destruction.
    for (const action of ['resume', 'activate', 'suspend', 'deactivate'] as const) expectError(await state('life/comp', { action }), 409, 'KEY_STATE_TRANSITION_INVALID');
    const r = await call('POST', `/v1/keys/${encodeURIComponent('life/comp')}/rotate`, { reason: 'replace the compromised version' });
    expectStatus(r, 201);
    assert.equal((r.body as api.RotateKeyResult).queued, 2);
    assert.equal((r.body as api.RotateKeyResult).graceUntil, null, 'no active version left to keep for a grace period');
    expectStatus(await state('life/comp', { action: 'destroy', version: 1 }), 200);
    const [v1] = await sql<{ state: string; compromised_at: Date | null; len: number }>(
      `SELECT v.state, v.compromised_at, length(v.wrapped)::int AS len FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'life/comp' AND v.version = 1`,
    );
    assert.equal(v1.state, 'destroyed');
    assert.ok(v1.compromised_at, 'that it was compromised is kept after destruction');
    assert.equal(v1.len, 0);
    const [{ state: keyState }] = await sql<{ state: string }>(`SELECT state FROM keys WHERE name = 'life/comp'`);
    assert.equal(keyState, 'active', 'the key is active again through its new version');
  });

  it('shows every version with its state and dates', async () => {
    const r = await call('GET', `/v1/keys/${encodeURIComponent('life/steps')}`);
    expectStatus(r, 200);
    const detail = r.body as api.KeyDetail;
    assert.equal(detail.key.state, 'destroyed');
    assert.deepEqual(
      detail.versions.map((v) => [v.version, v.state]),
      [[1, 'destroyed']],
    );
    assert.ok(detail.versions[0].destroyedAt);
    assert.equal(detail.lifecycle.graceSeconds, 86_400);
  });

  it('rotation: version N+1 is queued to every site holding the key, and version N is deactivated there after the grace period', async () => {
    await createKey('life/rot', { graceSeconds: 2 });
    await distribute('life/rot', [L1, L2]);
    // L1's copy is confirmed, L2's still in flight: both hold the key. L3 never had it.
    await sql(
      `UPDATE distributions SET state = 'confirmed', confirmed_at = now() WHERE listener_id = $1 AND key_version_id IN (SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'life/rot')`,
      [L1],
    );
    const r = await call('POST', `/v1/keys/${encodeURIComponent('life/rot')}/rotate`, { reason: 'yearly' });
    expectStatus(r, 201);
    const rot = r.body as api.RotateKeyResult;
    assert.equal(rot.version, 2);
    assert.equal(rot.previous, 1);
    assert.equal(rot.queued, 2);
    assert.ok(rot.graceUntil);
    assert.deepEqual(
      (await distributions('life/rot')).map((d) => [d.version, d.listener_id, d.target, d.packages, d.outbox]),
      [
        [1, L1, 'hsm', 1, 1],
        [1, L2, 'hsm', 1, 1],
        [2, L1, 'hsm', 1, 1],
        [2, L2, 'hsm', 1, 1],
      ],
    );
    const rotated = await sql<{ actor: string; details: Record<string, unknown> }>(`SELECT actor, details FROM audit_events WHERE action = 'key.rotated' AND subject = 'key:life/rot'`);
    assert.equal(rotated.length, 1);
    assert.equal(rotated[0].actor, 'ko');
    assert.deepEqual([rotated[0].details.previous, rotated[0].details.version, rotated[0].details.reason], [1, 2, 'yearly']);
    const v1 = await versionRow('life/rot', 1);
    assert.equal(v1.state, 'active', 'the old version stays active during the grace period');
    assert.ok(v1.deactivate_at && Math.abs(v1.deactivate_at.getTime() - Date.parse(rot.graceUntil!)) < 1000);

    const schedule = h.fx.rt.container.resolve(RunKeySchedule);
    assert.equal((await schedule.execute()).deactivated, 0, 'nothing is due before the grace period ends');
    await sleep(Math.max(0, Date.parse(rot.graceUntil!) - Date.now()) + 50);
    assert.equal((await schedule.execute()).deactivated, 1);
    assert.equal((await schedule.execute()).deactivated, 0, 'a second run finds nothing');
    assert.equal((await versionRow('life/rot', 1)).state, 'deactivated');
    assert.equal((await versionRow('life/rot', 2)).state, 'active');
    const events = await stateEvents('life/rot', 'deactivated');
    assert.equal(events.length, 1);
    assert.equal(events[0].actor, 'system:scheduler');
    assert.deepEqual(
      (await commands('life/rot', 1)).map((c) => `${c.listener_id}:${c.action}`),
      [`${L1}:deactivate`, `${L2}:deactivate`],
      'both sites that hold version 1 are told to deactivate it',
    );
    assert.deepEqual(await commands('life/rot', 2), [], 'the new version is left alone');
  });

  it('destroy under dual control: refused until M approvals, runs once at quorum', async () => {
    expectStatus(await call('PUT', '/v1/policies/key.destroy', { required: 2, enabled: true }, h.tokens.get('admin')), 200);
    await createKey('life/dc');
    await distribute('life/dc', [L1]);
    expectStatus(await state('life/dc', { action: 'deactivate' }), 200);
    // Refused before anyone is asked: an active version cannot be destroyed at all.
    await createKey('life/dc-active');
    expectError(await state('life/dc-active', { action: 'destroy' }), 409, 'KEY_STATE_TRANSITION_INVALID');

    const r = await state('life/dc', { action: 'destroy', reason: 'retired' });
    expectStatus(r, 202);
    const request = (r.body as api.ApprovalPending).approval;
    assert.equal(request.action, 'key.destroy');
    assert.equal(request.required, 2);
    const doc = JSON.parse(request.canonical) as { key: string; version: number; kcv: string };
    assert.equal(doc.key, 'life/dc');
    assert.equal(doc.version, 1);
    const approve = (who: string) => h.call('POST', `/v1/approvals/${request.id}/approve`, { token: h.tokens.get(who), body: { hash: request.hash } });

    const first = await approve('ap1');
    expectStatus(first, 200);
    assert.equal((first.body as api.ApprovalRequestView).state, 'pending');
    assert.equal((await versionRow('life/dc', 1)).state, 'deactivated', 'one approval of two changes nothing');
    assert.deepEqual(
      (await commands('life/dc', 1)).map((c) => c.action),
      ['deactivate'],
    );

    const second = await approve('ap2');
    expectStatus(second, 200);
    assert.equal((second.body as api.ApprovalRequestView).state, 'executed');
    const row = await versionRow('life/dc', 1);
    assert.equal(row.state, 'destroyed');
    assert.equal(row.wrapped_len, 0);
    const destroyed = await stateEvents('life/dc', 'destroyed');
    assert.equal(destroyed.length, 1);
    assert.equal(destroyed[0].actor, 'ko');
    assert.equal(destroyed[0].details.approvers, 'ap1,ap2');
    assert.deepEqual(
      (await commands('life/dc', 1)).map((c) => c.action),
      ['deactivate', 'destroy'],
    );
    // Executed once: another approval is refused and changes nothing.
    await h.operator('ap3', ['approver']);
    expectError(await approve('ap3'), 409, 'APPROVAL_STATE_INVALID');
    assert.equal((await stateEvents('life/dc', 'destroyed')).length, 1);
    // (The policy stays on: switching it off is itself under dual control.)
  });

  it('a key created with a future activation date starts in pre-activation and is not distributed until active', async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    await createKey('life/later', { activateAt: at, cryptoperiodSeconds: 86_400 });
    const detail = (await call('GET', `/v1/keys/${encodeURIComponent('life/later')}`)).body as api.KeyDetail;
    assert.equal(detail.key.state, 'pre-activation');
    assert.equal(detail.versions[0].activateAt, at);
    assert.equal(detail.versions[0].deactivateAt, new Date(Date.parse(at) + 86_400_000).toISOString());
    const [created] = await sql<{ details: Record<string, unknown> }>(`SELECT details FROM audit_events WHERE action = 'key.created' AND subject = 'key:life/later'`);
    assert.deepEqual([created.details.state, created.details.activateAt, created.details.cryptoperiodSeconds], ['pre-activation', at, 86_400], 'the creation event records the schedule');
    expectError(await call('POST', '/v1/distributions', { keys: [{ name: 'life/later' }], to: [{ listenerId: L1 }] }), 409, 'KEY_VERSION_NOT_ACTIVE');
    // Activated early by an operator: no site holds it yet, so no command.
    const r = await state('life/later', { action: 'activate' });
    expectStatus(r, 200);
    assert.equal((r.body as api.KeyStateResult).sites, 0);
    // Activated early: the cryptoperiod runs from now.
    const after = ((await call('GET', `/v1/keys/${encodeURIComponent('life/later')}`)).body as api.KeyDetail).versions[0];
    assert.ok(Math.abs(Date.parse(after.activateAt) - Date.now()) < 5_000);
    assert.equal(Date.parse(after.deactivateAt!) - Date.parse(after.activateAt), 86_400_000);
    await distribute('life/later', [L1]);
  });
  it('the CLI: key create with a lifecycle, rotate, suspend, show, and a refused destroy with its exit code', async () => {
    const dir = await makeTempDir('life-cli');
    cleanup.add('CLI temp dir', () => dir.remove());
    const caFile = path.join(dir.path, 'ca.pem');
    await writeFile(caFile, h.caPem);
    const env = { PATH: process.env.PATH, KEYHUB_ADDR: h.url, KEYHUB_TOKEN: ko(), KEYHUB_CACERT: caFile, KEYHUB_CLI_HOME: dir.path };
    const cli = (...args: string[]) => run(process.execPath, [HUB_CLI, ...args, '--json'], { env });
    const created = await cli('key', 'create', 'life/cli', '--alg', 'AES-256', '--cryptoperiod', '365d', '--grace', '30s');
    assert.equal(created.code, 0, created.stderr);
    await distribute('life/cli', [L1]);
    const rotated = await cli('key', 'rotate', 'life/cli', '--reason', 'drill');
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.deepEqual((JSON.parse(rotated.stdout) as api.RotateKeyResult).queued, 1);
    const suspended = await cli('key', 'suspend', 'life/cli', '--version', '2', '--reason', 'drill');
    assert.equal(suspended.code, 0, suspended.stderr);
    assert.equal((JSON.parse(suspended.stdout) as api.KeyStateResult).to, 'suspended');
    const shown = await cli('key', 'show', 'life/cli');
    assert.equal(shown.code, 0, shown.stderr);
    const detail = JSON.parse(shown.stdout) as api.KeyDetail;
    assert.deepEqual(
      detail.versions.map((v) => [v.version, v.state]),
      [
        [1, 'active'],
        [2, 'suspended'],
      ],
    );
    assert.equal(detail.lifecycle.cryptoperiodSeconds, 365 * 86_400);
    assert.equal(detail.lifecycle.graceSeconds, 30);
    const refused = await cli('key', 'destroy', 'life/cli', '--version', '1');
    assert.equal(refused.code, 4, `exit code for a refused transition: ${refused.stdout} ${refused.stderr}`);
    assert.match(refused.stdout + refused.stderr, /KEY_STATE_TRANSITION_INVALID/);
  });
  it('a version that is not active is never sent again: not by the re-send job, not after a receipt whose failure a fresh package would cure', async () => {
    await createKey('life/nosend-a');
    await createKey('life/nosend-s');
    await distribute('life/nosend-a', [L3]);
    await distribute('life/nosend-s', [L3]);
    expectStatus(await state('life/nosend-s', { action: 'suspend' }), 200);
    // Both look sent an hour ago to an online listener, without a receipt: both are re-send candidates but for their state.
    const ofKeys = `SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name LIKE 'life/nosend-%'`;
    await sql(`UPDATE distributions SET state = 'sent', last_sent_at = now() - interval '1 hour' WHERE key_version_id IN (${ofKeys})`);
    await sql(`UPDATE listeners SET last_seen_at = now() WHERE id = $1`, [L3]);
    const packages = async (name: string): Promise<number> => (await distributions(name)).reduce((n, d) => n + d.packages, 0);
    const r = await h.fx.rt.container.resolve(ResendDue).execute();
    assert.equal(r.reissued, 1, 'only the active version is re-sent');
    assert.equal(await packages('life/nosend-a'), 2);
    assert.equal(await packages('life/nosend-s'), 1);

    const [d] = await sql<{ id: string; last_package_id: string; sha: string }>(
      `SELECT d.id, d.last_package_id, encode(p.envelope_sha256, 'hex') AS sha FROM distributions d JOIN packages p ON p.id = d.last_package_id
        WHERE d.key_version_id = (SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'life/nosend-s')`,
    );
    const receipt: Receipt = {
      type: MESSAGE_TYPES.receipt,
      id: randomUUID(),
      listenerId: L3,
      issuedAt: new Date().toISOString(),
      packageId: d.last_package_id,
      packageSha256: d.sha,
      target: 'hsm',
      outcome: 'failed',
      error: { code: 'PACKAGE_EXPIRED', detail: 'package expired' },
    };
    await h.fx.rt.container.resolve(ApplyReceipt).executeBatch([receipt]);
    const [after] = await sql<{ state: string; error_code: string }>('SELECT state, error_code FROM distributions WHERE id = $1', [d.id]);
    assert.deepEqual(after, { state: 'failed', error_code: 'KEY_VERSION_NOT_ACTIVE' });
    assert.equal(await packages('life/nosend-s'), 1, 'no fresh package for the suspended version');
  });
});
