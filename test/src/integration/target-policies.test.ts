import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign as nodeSign, type KeyObject } from 'node:crypto';
import { decodeEnvelope, MESSAGE_TYPES, signingInput, subjects, type Heartbeat, type KeyPackage, type Message, type SignedEnvelope, type TargetUpdate } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
// The fixture first: it loads the hub's composition root (and reflect-metadata) before any operation.
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { insertActiveListeners } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { HeartbeatHandler } from '@keyhub/hub/dist/bus/heartbeat-handler';
import { UpHandler } from '@keyhub/hub/dist/bus/up-handler';
import { ApplyReceipt } from '@keyhub/hub/dist/operations/distributions/apply-receipts';
import { ConfirmRootKek } from '@keyhub/hub/dist/operations/listeners/confirm-root-kek';
import { RecordHeartbeats } from '@keyhub/hub/dist/operations/listeners/record-heartbeats';
import { RegisterEnrollment } from '@keyhub/hub/dist/operations/listeners/register-enrollment';
import { VerifyListenerSignature } from '@keyhub/hub/dist/operations/listeners/verify-listener-signature';
import { RegisterTargetUpdate } from '@keyhub/hub/dist/operations/targets/register-target-update';

/**
 * Targets as configuration at the hub (issue 12), on real parts (the hub's
 * SoftHSM2 token, PostgreSQL, the HTTPS API): a key's target policy refused
 * at the API and again where packages are built (a policy widened in the
 * database fails the row MAC), carried in the signed package; per-target
 * health from signed heartbeats; targets added and removed by signed
 * updates an operator approves, and forged updates dropped.
 */
describe('target policies and signed target updates (hub token, PostgreSQL, API)', function () {
  this.timeout(180_000);
  const cleanup = new Cleanup();
  const SITE = 'tp-site';
  const OTHER = 'tp-other';
  let h: ApiHub;
  let officer: string;
  let up: UpHandler;
  let beats: HeartbeatHandler;
  let record: RecordHeartbeats;
  const site = newSigner(SITE);
  const other = newSigner(OTHER);
  const attacker = newSigner(SITE);

  before(async function () {
    this.timeout(180_000);
    h = await createApiHub(cleanup);
    await insertActiveListeners(h.fx, [SITE, OTHER]);
    for (const s of [site, other]) await h.fx.asOwner('UPDATE listeners SET identity_key = $1 WHERE id = $2', [s.spki, s.id]);
    // Enrolled with its own token and a PKCS#12 keystore.
    await h.fx.asOwner('UPDATE listeners SET targets = $1 WHERE id = $2', [
      JSON.stringify([
        { name: 'hsm', kind: 'pkcs11' },
        { name: 'jks', kind: 'keystore' },
      ]),
      SITE,
    ]);
    officer = await h.operator('tp-officer', ['key-officer']);
    const c = h.fx.rt.container;
    const verify = new VerifyListenerSignature(h.fx.rt.ds);
    up = new UpHandler(verify, c.resolve(RegisterEnrollment), c.resolve(ConfirmRootKek), c.resolve(ApplyReceipt), h.fx.logger);
    up.targetUpdates = c.resolve(RegisterTargetUpdate);
    beats = new HeartbeatHandler(verify, h.fx.logger);
    record = new RecordHeartbeats(h.fx.rt.ds);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const call = (method: string, path: string, body?: unknown): Promise<ApiResponse> => h.call(method, path, { token: officer, body });
  const createKey = async (name: string, extra: Record<string, unknown> = {}) => expect(await call('POST', '/v1/keys', { name, algorithm: 'AES-256', ...extra }), 201);
  const distribute = (key: string, to: Array<{ listenerId: string; target?: string }>) => call('POST', '/v1/distributions', { keys: [{ name: key }], to });
  const distributionsOf = async (key: string): Promise<string[]> =>
    (
      (await h.fx.asOwner(
        `SELECT d.listener_id || '/' || d.target || ':' || d.state AS s FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = $1 ORDER BY 1`,
        [key],
      )) as Array<{ s: string }>
    ).map((r) => r.s);
  const packagesOf = async (key: string): Promise<KeyPackage[]> => {
    const rows = (await h.fx.asOwner(
      `SELECT o.payload FROM outbox o JOIN distributions d ON d.id = o.distribution_id JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = $1`,
      [key],
    )) as Array<{ payload: Buffer }>;
    return rows.map((r) => {
      const dec = decodeEnvelope(r.payload);
      assert.ok(dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.keyPackage);
      return dec.envelope.payload as KeyPackage;
    });
  };
  const targets = async (listenerId = SITE) => (expect(await call('GET', `/v1/listeners/${listenerId}/targets`), 200) as { targets: Array<Record<string, unknown>> }).targets;
  const targetNamed = async (name: string) => (await targets()).find((t) => t.name === name) as Record<string, any> | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
  const updatesOf = async (target: string) =>
    (await h.fx.asOwner('SELECT op, state FROM target_updates WHERE listener_id = $1 AND target = $2 ORDER BY requested_at', [SITE, target])) as Array<{ op: string; state: string }>;
  const sendUp = (envelope: SignedEnvelope, listenerId = SITE) => up.process(subjects.fromListener(listenerId, 'target_update'), Buffer.from(JSON.stringify(envelope)));
  const update = (op: 'add' | 'remove', target: string, kind: TargetUpdate['kind'], settings: Record<string, string> = {}): TargetUpdate => ({
    type: MESSAGE_TYPES.targetUpdate,
    id: randomUUID(),
    listenerId: SITE,
    issuedAt: new Date().toISOString(),
    op,
    target,
    kind,
    settings,
  });

  it('an HSM-only key (the default) is refused for a keystore target at the API, and "every target" means its allowed ones', async () => {
    await createKey('tp/hsm-only');
    const shown = expect(await call('GET', '/v1/keys/tp%2Fhsm-only'), 200) as { key: { targetKinds: string[]; allowClearImport: boolean } };
    assert.deepEqual(shown.key.targetKinds, ['pkcs11']);
    assert.equal(shown.key.allowClearImport, false);
    expectError(await distribute('tp/hsm-only', [{ listenerId: SITE, target: 'jks' }]), 409, 'TARGET_KIND_NOT_ALLOWED');
    assert.deepEqual(await distributionsOf('tp/hsm-only'), []);
    expect(await distribute('tp/hsm-only', [{ listenerId: SITE }]), 200);
    assert.deepEqual(await distributionsOf('tp/hsm-only'), [`${SITE}/hsm:queued`]);
    // Its package carries no policy fields: the default, as packages were before.
    const [p] = await packagesOf('tp/hsm-only');
    assert.equal(p.target, 'hsm');
    assert.equal(p.key.targetKinds, undefined);
    assert.equal(p.key.allowClearImport, undefined);
    // A placement naming the keystore target is refused too; one naming none places the key in the token only.
    expectError(await call('POST', '/v1/placements', { name: 'tp-pl-jks', key: 'tp/hsm-only', listeners: [SITE], targets: ['jks'] }), 409, 'TARGET_KIND_NOT_ALLOWED');
  });

  it('a key whose policy allows keystores reaches one, and its signed package names the kinds it may reach', async () => {
    await createKey('tp/keystore-ok', { targetKinds: ['keystore', 'pkcs11'], allowClearImport: true });
    expect(await distribute('tp/keystore-ok', [{ listenerId: SITE, target: 'jks' }]), 200);
    assert.deepEqual(await distributionsOf('tp/keystore-ok'), [`${SITE}/jks:queued`]);
    const [p] = await packagesOf('tp/keystore-ok');
    assert.deepEqual(p.key.targetKinds, ['keystore', 'pkcs11']);
    assert.equal(p.key.allowClearImport, true);
  });

  it('a policy widened in the database is refused where packages are built (row MAC), and the API cannot re-bind it', async () => {
    await createKey('tp/tampered');
    await h.fx.asOwner(`UPDATE keys SET target_kinds = '{keystore,pkcs11}' WHERE name = 'tp/tampered'`);
    // The API reads the altered row and lets the push through; the HSM's row MAC check does not.
    expectError(await distribute('tp/tampered', [{ listenerId: SITE, target: 'jks' }]), 409, 'ROW_MAC_INVALID');
    assert.deepEqual(await distributionsOf('tp/tampered'), []);
    // Changing the policy through the API checks the stored MAC first: the altered row is not laundered into a valid one.
    expectError(await call('PUT', '/v1/keys/tp%2Ftampered/target-policy', { targetKinds: ['pkcs11', 'keystore'] }), 409, 'ROW_MAC_INVALID');
    const [mac] = (await h.fx.asOwner(`SELECT v.mac FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'tp/tampered'`)) as Array<{ mac: Buffer }>;
    assert.ok(mac.mac.length > 0);
    // Put back, the row verifies again and the token target takes it.
    await h.fx.asOwner(`UPDATE keys SET target_kinds = '{pkcs11}' WHERE name = 'tp/tampered'`);
    expect(await distribute('tp/tampered', [{ listenerId: SITE, target: 'hsm' }]), 200);
  });

  it('a policy widened through the API re-binds every version; under key.target_policy the widening waits for an approver', async () => {
    await createKey('tp/widen');
    expect(await call('POST', '/v1/keys/tp%2Fwiden/rotate', {}), 201);
    const r = expect(await call('PUT', '/v1/keys/tp%2Fwiden/target-policy', { targetKinds: ['pkcs11', 'keystore'] }), 200) as { targetKinds: string[]; versions: number };
    assert.deepEqual(r.targetKinds, ['keystore', 'pkcs11']);
    assert.equal(r.versions, 2);
    expect(await distribute('tp/widen', [{ listenerId: SITE, target: 'jks' }]), 200);
    assert.deepEqual(await distributionsOf('tp/widen'), [`${SITE}/jks:queued`]);
    const [audit] = (await h.fx.asOwner(`SELECT details FROM audit_events WHERE action = 'key.target_policy_changed' AND subject = 'key:tp/widen'`)) as Array<{ details: Record<string, unknown> }>;
    assert.equal(audit.details.to, 'keystore,pkcs11');
    // Under the policy (left on: no later test widens a policy), narrowing runs at once; widening becomes a request an approver decides.
    const approver = await h.operator('tp-approver', ['approver']);
    expect(await h.call('PUT', '/v1/policies/key.target_policy', { token: h.tokens.get('admin'), body: { required: 1, enabled: true } }), 200);
    expect(await call('PUT', '/v1/keys/tp%2Fwiden/target-policy', { targetKinds: ['pkcs11'] }), 200);
    const pending = expect(await call('PUT', '/v1/keys/tp%2Fwiden/target-policy', { targetKinds: ['pkcs11', 'aws-kms'], allowClearImport: true }), 202) as {
      approval: { id: string; action: string; hash: string };
    };
    assert.equal(pending.approval.action, 'key.target_policy');
    const policyOf = async () => (expect(await call('GET', '/v1/keys/tp%2Fwiden'), 200) as { key: { targetKinds: string[]; allowClearImport: boolean } }).key;
    const meanwhile = await policyOf();
    assert.deepEqual([meanwhile.targetKinds, meanwhile.allowClearImport], [['pkcs11'], false]);
    expectError(await distribute('tp/widen', [{ listenerId: SITE, target: 'jks' }]), 409, 'TARGET_KIND_NOT_ALLOWED');
    const decided = expect(await h.call('POST', `/v1/approvals/${pending.approval.id}/approve`, { token: approver, body: { hash: pending.approval.hash } }), 200) as { state: string };
    assert.equal(decided.state, 'executed');
    const after = await policyOf();
    assert.deepEqual([after.targetKinds, after.allowClearImport], [['aws-kms', 'pkcs11'], true]);
    // Both versions were re-bound to the new policy: they still build packages.
    expect(await distribute('tp/widen', [{ listenerId: SITE, target: 'hsm' }]), 200);
  });

  it('per-target health from a signed heartbeat is shown with kind, last heard time and inventory counts', async () => {
    const before = await targetNamed('jks');
    assert.deepEqual(before?.health, { healthy: null, detail: null, at: null });
    const hb: Heartbeat = {
      type: MESSAGE_TYPES.heartbeat,
      id: randomUUID(),
      listenerId: SITE,
      issuedAt: new Date().toISOString(),
      sequence: 7,
      targets: [
        { name: 'hsm', healthy: true },
        { name: 'jks', healthy: false, detail: 'KEYSTORE_NOT_WRITABLE' },
      ],
    };
    await beats.check({ subject: subjects.heartbeat(SITE), data: Buffer.from(JSON.stringify(signAs(site, hb))) });
    // A forged heartbeat claiming the keystore healthy again changes nothing.
    await beats.check({ subject: subjects.heartbeat(SITE), data: Buffer.from(JSON.stringify(signAs(attacker, { ...hb, id: randomUUID(), sequence: 8, targets: [{ name: 'jks', healthy: true }] }))) });
    assert.deepEqual(await record.execute(beats.takeSeen()), [SITE]);
    const jks = await targetNamed('jks');
    const hsm = await targetNamed('hsm');
    assert.equal(jks?.kind, 'keystore');
    assert.equal(jks?.approval, 'approved');
    assert.equal(jks?.health.healthy, false);
    assert.equal(jks?.health.detail, 'KEYSTORE_NOT_WRITABLE');
    assert.ok(Date.parse(jks?.health.at) > Date.now() - 60_000);
    assert.equal(hsm?.health.healthy, true);
    assert.equal(typeof jks?.inventory.items, 'number');
  });

  it('a forged, unsigned or misaddressed target update is dropped and records nothing', async () => {
    const add = update('add', 'forged', 'aws-kms', { region: 'eu-west-1' });
    await assert.rejects(sendUp(signAs(attacker, add)), (e: unknown) => KeyhubError.is(e, 'SIGNATURE_INVALID'));
    await assert.rejects(up.process(subjects.fromListener(SITE, 'target_update'), Buffer.from(JSON.stringify({ payload: add }))), (e: unknown) => KeyhubError.is(e, 'MESSAGE_MALFORMED'));
    // Signed by the other site, for this one, sent under the other's subject.
    await assert.rejects(sendUp(signAs(other, add), OTHER), (e: unknown) => KeyhubError.is(e, 'PACKAGE_WRONG_LISTENER'));
    // A secret-looking setting is just text to the hub, but a removal of a target the site lacks is refused.
    await assert.rejects(sendUp(signAs(site, update('remove', 'no-such', 'keystore'))), (e: unknown) => KeyhubError.is(e, 'TARGET_UNKNOWN'));
    assert.equal(((await h.fx.asOwner('SELECT count(*)::int AS n FROM target_updates')) as Array<{ n: number }>)[0].n, 0);
    assert.equal(await targetNamed('forged'), undefined);
  });

  it('a target added by signed update is pending (refused) until an operator approves that update, then receives keys its policy allows', async () => {
    await createKey('tp/cloud', { targetKinds: ['pkcs11', 'aws-kms'] });
    const add = update('add', 'kms', 'aws-kms', { region: 'eu-west-1', endpoint: 'https://kms.local' });
    await sendUp(signAs(site, add));
    // Delivered twice (JetStream redelivery): recorded once.
    await sendUp(signAs(site, add));
    assert.deepEqual(await updatesOf('kms'), [{ op: 'add', state: 'requested' }]);
    const pending = await targetNamed('kms');
    assert.equal(pending?.approval, 'pending_add');
    assert.equal(pending?.kind, 'aws-kms');
    assert.deepEqual(pending?.update.settings, { region: 'eu-west-1', endpoint: 'https://kms.local' });
    expectError(await distribute('tp/cloud', [{ listenerId: SITE, target: 'kms' }]), 409, 'TARGET_NOT_APPROVED');
    // Approving another update id approves nothing.
    expectError(await call('POST', `/v1/listeners/${SITE}/targets/kms/approve-update`, { updateId: randomUUID() }), 404, 'TARGET_UPDATE_NOT_FOUND');
    const done = expect(await call('POST', `/v1/listeners/${SITE}/targets/kms/approve-update`, { updateId: pending?.update.id }), 200) as { op: string; kind: string };
    assert.deepEqual([done.op, done.kind], ['add', 'aws-kms']);
    assert.equal((await targetNamed('kms'))?.approval, 'approved');
    expect(await distribute('tp/cloud', [{ listenerId: SITE, target: 'kms' }]), 200);
    assert.deepEqual(await distributionsOf('tp/cloud'), [`${SITE}/kms:queued`]);
    const [p] = await packagesOf('tp/cloud');
    assert.equal(p.target, 'kms');
    assert.deepEqual(p.key.targetKinds, ['aws-kms', 'pkcs11']);
    // An HSM-only key still does not reach the cloud.
    expectError(await distribute('tp/hsm-only', [{ listenerId: SITE, target: 'kms' }]), 409, 'TARGET_KIND_NOT_ALLOWED');
    const [audit] = (await h.fx.asOwner(`SELECT actor, details FROM audit_events WHERE action = 'target.added' AND subject = $1`, [`listener:${SITE}`])) as Array<{
      actor: string;
      details: Record<string, unknown>;
    }>;
    assert.equal(audit.actor, 'tp-officer');
    assert.equal(audit.details.kind, 'aws-kms');
  });

  it('a removal keeps the target until approved, then retires its deliveries and refuses further pushes', async () => {
    await createKey('tp/removed', { targetKinds: ['pkcs11', 'keystore'] });
    expect(await distribute('tp/removed', [{ listenerId: SITE, target: 'jks' }]), 200);
    await sendUp(signAs(site, update('remove', 'jks', 'keystore')));
    const pending = await targetNamed('jks');
    assert.equal(pending?.approval, 'pending_remove');
    // Until the removal is approved, the target still receives.
    await createKey('tp/removed-2', { targetKinds: ['keystore'] });
    expect(await distribute('tp/removed-2', [{ listenerId: SITE, target: 'jks' }]), 200);
    const done = expect(await call('POST', `/v1/listeners/${SITE}/targets/jks/approve-update`, { updateId: pending?.update.id }), 200) as { retired: { distributions: number } };
    assert.ok(done.retired.distributions >= 2);
    assert.deepEqual(await distributionsOf('tp/removed'), [`${SITE}/jks:superseded`]);
    // Its packages not yet published never will be.
    assert.deepEqual(await packagesOf('tp/removed'), []);
    assert.deepEqual(await packagesOf('tp/removed-2'), []);
    assert.equal(await targetNamed('jks'), undefined);
    expectError(await distribute('tp/removed', [{ listenerId: SITE, target: 'jks' }]), 409, 'TARGET_NOT_APPROVED');
    // "Every target of the site" no longer includes it either.
    expect(await distribute('tp/removed', [{ listenerId: SITE }]), 200);
    assert.deepEqual(await distributionsOf('tp/removed'), [`${SITE}/hsm:queued`, `${SITE}/jks:superseded`]);
    const [audit] = (await h.fx.asOwner(`SELECT details FROM audit_events WHERE action = 'target.removed' AND subject = $1`, [`listener:${SITE}`])) as Array<{ details: Record<string, unknown> }>;
    assert.equal(audit.details.target, 'jks');
  });

  it('under listener.target_update an update is approved by an approver, and only the update the request names', async () => {
    const approver = await h.operator('tp-approver-2', ['approver']);
    expect(await h.call('PUT', '/v1/policies/listener.target_update', { token: h.tokens.get('admin'), body: { required: 1, enabled: true } }), 200);
    const decide = (a: { id: string; hash: string }) => h.call('POST', `/v1/approvals/${a.id}/approve`, { token: approver, body: { hash: a.hash } });
    // A request for one update; the site then sends a newer one for the same target: the request no longer names the update awaiting approval.
    await sendUp(signAs(site, update('add', 'blocks', 'tr31', { host: 'payshield-1' })));
    const first = expect(await call('POST', `/v1/listeners/${SITE}/targets/blocks/approve-update`, { updateId: (await targetNamed('blocks'))?.update.id }), 202) as {
      approval: { id: string; hash: string; action: string; summary: string };
    };
    assert.equal(first.approval.action, 'listener.target_update');
    assert.match(first.approval.summary, /add tr31 target blocks to listener tp-site \(host=payshield-1\)/);
    await sendUp(signAs(site, update('add', 'blocks', 'tr31', { host: 'payshield-2' })));
    const stale = expect(await decide(first.approval), 200) as { state: string; errorCode: string | null };
    assert.deepEqual([stale.state, stale.errorCode], ['failed', 'TARGET_UPDATE_NOT_FOUND']);
    assert.equal((await targetNamed('blocks'))?.approval, 'pending_add');
    // The newer update, requested and approved: the target joins the site.
    const second = expect(await call('POST', `/v1/listeners/${SITE}/targets/blocks/approve-update`, { updateId: (await targetNamed('blocks'))?.update.id }), 202) as {
      approval: { id: string; hash: string };
    };
    assert.equal((expect(await decide(second.approval), 200) as { state: string }).state, 'executed');
    const added = await targetNamed('blocks');
    assert.deepEqual([added?.approval, added?.kind], ['approved', 'tr31']);
    const [audit] = (await h.fx.asOwner(`SELECT details FROM audit_events WHERE action = 'target.added' AND details->>'target' = 'blocks'`)) as Array<{ details: Record<string, unknown> }>;
    assert.equal(audit.details.approvers, 'tp-approver-2');
    assert.equal(audit.details.settings, 'host=payshield-2');
  });
});

interface Signer {
  id: string;
  key: KeyObject;
  spki: Buffer;
}

function newSigner(id: string): Signer {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { id, key: pair.privateKey, spki: pair.publicKey.export({ type: 'spki', format: 'der' }) };
}

function signAs<M extends Message>(s: Signer, payload: M): SignedEnvelope<M> {
  return { payload, signature: { alg: 'ES256', keyId: s.id, value: nodeSign('sha256', signingInput(payload), { key: s.key, dsaEncoding: 'ieee-p1363' }).toString('base64') } };
}

function expect(r: ApiResponse, status: number): unknown {
  assert.equal(r.status, status, `expected HTTP ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

function expectError(r: ApiResponse, status: number, code: string): void {
  const got = (r.body as { error?: { code?: string } } | undefined)?.error?.code;
  assert.equal(got, code, `expected ${code}, got HTTP ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(r.status, status);
}
