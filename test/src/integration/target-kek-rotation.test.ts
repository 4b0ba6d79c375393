import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { constants, createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, randomUUID, type KeyObject } from 'node:crypto';
import { decodeEnvelope, MESSAGE_TYPES, verifyEnvelope, type KeyPackage, type SignedEnvelope, type TargetKekConfirm, type TargetKekMessage, type TargetKekRotation } from '@keyhub/protocol';
import { cmacSubkey } from '@keyhub/shared';
import { ConfirmTargetKek } from '@keyhub/hub/dist/operations/targets/confirm-target-kek';
import { RegisterTargetKekRequest } from '@keyhub/hub/dist/operations/targets/register-target-kek-request';
import { insertActiveListeners } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';

const SITE = 'tkr-site';
const TARGET = 'tgt-x';
const KWP_IV = Buffer.from('a65959a6', 'hex');

/** AES-KWP (RFC 5649) unwrap in memory: an implementation independent of the HSM path that wrapped it. */
function kwpUnwrap(kek: Buffer, blob: Buffer): Buffer {
  const d = createDecipheriv('id-aes256-wrap-pad', kek, KWP_IV);
  return Buffer.concat([d.update(blob), d.final()]);
}

/** The AES-CMAC KCV of a key in clear (first 3 bytes of CMAC over a zero block), computed in memory. */
function kcvOf(key: Buffer): string {
  const ecb = (block: Buffer): Buffer => {
    const c = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    return Buffer.concat([c.update(block), c.final()]);
  };
  return ecb(cmacSubkey(ecb(Buffer.alloc(16))))
    .subarray(0, 3)
    .toString('hex');
}

/**
 * Target KEK rotation at the hub (issue 12), on real PostgreSQL and a real
 * SoftHSM2 hub token, without NATS: the API writes the outbox, the test
 * plays the site (it holds the transport private key, so it can read the
 * first target KEK, and with it every rotation wrapped under it: what the
 * target token would do, done in memory by an independent implementation),
 * and confirmations are fed to the operation the UP handler calls. The
 * state machine: rotate, one at a time, confirm (packages switch), a KCV
 * mismatch refused for good, the in-flight guard, the older versions the
 * site is told to destroy, targets that cannot rotate, a tampered row.
 */
describe('target KEK rotation at the hub (API, PostgreSQL, SoftHSM2)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  let ko = '';
  let hubSpki: Buffer;
  /** The target KEKs in clear, by id, as the site's token would hold them. */
  const clear = new Map<string, Buffer>();

  const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> => h.fx.rt.ds.query(text, params);
  const code = (r: ApiResponse): string | undefined => (r.body as { error?: { code?: string } } | undefined)?.error?.code;
  const post = (path: string, body: unknown = {}): Promise<ApiResponse> => h.call('POST', path, { token: ko, body });
  const rotate = (site: string, target: string, body: unknown = {}): Promise<ApiResponse> => post(`/v1/listeners/${site}/targets/${target}/rotate-kek`, body);
  const rows = (site: string, target = TARGET) =>
    sql<{ id: string; version: number; state: string; has_blob: boolean; wrapped_under: string | null }>(
      `SELECT id, version, state, wrapped IS NOT NULL AND length(wrapped) > 0 AS has_blob, wrapped_under FROM target_keks WHERE listener_id = $1 AND target = $2 ORDER BY version`,
      [site, target],
    );
  const confirm = (site: string, k: { id: string; version: number }, kcv: string, target = TARGET): Promise<string> => {
    const msg: TargetKekConfirm = { type: MESSAGE_TYPES.targetKekConfirm, id: randomUUID(), listenerId: site, issuedAt: new Date().toISOString(), target, kekId: k.id, kekVersion: k.version, kcv };
    return h.fx.rt.container.resolve(ConfirmTargetKek).execute(msg);
  };
  const audit = (action: string, site: string) =>
    sql<{ actor: string; details: Record<string, string | number> }>(`SELECT actor, details FROM audit_events WHERE action = $1 AND subject = $2 ORDER BY seq`, [action, `listener:${site}`]);

  /** The newest signed message on one of the site's DOWN subjects, checked against the hub key. */
  async function lastMessage<T>(site: string, kind: string): Promise<T> {
    const [row] = await sql<{ payload: Buffer }>(`SELECT payload FROM outbox WHERE subject = $1 ORDER BY id DESC LIMIT 1`, [`keyhub.v1.to.${site}.${kind}`]);
    assert.ok(row, `a ${kind} message for ${site} in the outbox`);
    const dec = decodeEnvelope(row.payload);
    assert.ok(dec.ok);
    assert.ok(verifyEnvelope(dec.envelope as SignedEnvelope<never>, hubSpki), 'signed by the hub');
    return dec.envelope.payload as T;
  }

  /** A target KEK of its own for (site, target), the way a site gets it: signed request, approval by fingerprint, KCV confirmation. */
  async function firstTargetKek(site: string, target: string): Promise<{ id: string; version: number; kcv: string }> {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const transportKey = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const reg = await h.fx.rt.container.resolve(RegisterTargetKekRequest).execute({
      type: MESSAGE_TYPES.targetKekRequest,
      id: randomUUID(),
      listenerId: site,
      issuedAt: new Date().toISOString(),
      target,
      kind: 'pkcs11',
      transportKey,
      oaepHash: 'sha1',
    });
    const ok = await post(`/v1/listeners/${site}/targets/${target}/approve`, { fingerprint: reg.fingerprint });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const msg = await lastMessage<TargetKekMessage>(site, 'target_kek');
    const kek = unwrapOaep(privateKey, msg.kek.blob);
    assert.equal(kcvOf(kek), msg.kek.kcv);
    clear.set(msg.kek.id, kek);
    assert.equal(await confirm(site, { id: msg.kek.id, version: msg.kek.version }, msg.kek.kcv, target), 'activated');
    return { id: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv };
  }

  function unwrapOaep(key: KeyObject, blob: string): Buffer {
    return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(blob, 'base64'));
  }

  /** The rotation just queued, opened the way the target token would: under the KEK it names, which the test holds in clear. */
  async function rotationSent(site: string): Promise<TargetKekRotation> {
    const msg = await lastMessage<TargetKekRotation>(site, 'target_kek');
    assert.equal(msg.type, MESSAGE_TYPES.targetKekRotation);
    const under = clear.get(msg.wrappedUnder.id);
    assert.ok(under, 'wrapped under a KEK the site holds');
    const next = kwpUnwrap(under, Buffer.from(msg.kek.blob, 'base64'));
    assert.equal(next.length, 32);
    assert.equal(kcvOf(next), msg.kek.kcv, 'the blob under the current KEK is the KEK the hub names');
    clear.set(msg.kek.id, next);
    return msg;
  }

  async function push(key: string, site: string, target = TARGET): Promise<KeyPackage> {
    const made = await h.call('POST', '/v1/keys', { token: ko, body: { name: key, algorithm: 'AES-256' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const r = await post('/v1/distributions', { keys: [{ name: key }], to: [{ listenerId: site, target }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const pkg = await lastMessage<KeyPackage>(site, 'package');
    assert.equal(pkg.key.name, key);
    return pkg;
  }

  /** The package opens under the KEK it names (in clear here) to a key with the hub's KCV. */
  function assertOpensUnder(pkg: KeyPackage, kekId: string): void {
    assert.equal(pkg.wrapping.kekId, kekId);
    assert.equal(kcvOf(kwpUnwrap(clear.get(kekId)!, Buffer.from(pkg.wrapping.blob, 'base64'))), pkg.key.kcv);
  }

  before(async function () {
    h = await createApiHub(cleanup);
    await insertActiveListeners(h.fx, [SITE, 'tkr-other']);
    ko = await h.operator('ko', ['key-officer']);
    hubSpki = h.fx.keyring.signingSpki;
  });

  after(async function () {
    await cleanup.run();
  });

  let v1: { id: string; version: number; kcv: string };
  let v3: TargetKekRotation;

  it('a rotation is sent signed, wrapped under the current target KEK, one at a time; packages keep the current KEK until the site confirms', async () => {
    v1 = await firstTargetKek(SITE, TARGET);
    const before = await push('tkr-before', SITE);
    assertOpensUnder(before, v1.id);

    const r = await rotate(SITE, TARGET, { reason: 'yearly' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const body = r.body as { kekId: string; version: number; kcv: string; wrappedUnder: { kekId: string; version: number }; retires: unknown[] };
    assert.deepEqual([body.version, body.wrappedUnder.kekId, body.wrappedUnder.version, body.retires], [2, v1.id, 1, []]);
    const msg = await rotationSent(SITE);
    assert.deepEqual([msg.kek.id, msg.kek.version, msg.kek.kcv, msg.target, msg.retire], [body.kekId, 2, body.kcv, TARGET, []]);
    const started = await audit('target_kek.rotation_started', SITE);
    assert.deepEqual([started.length, started[0].actor, started[0].details.version, started[0].details.reason], [1, 'ko', 2, 'yearly']);
    // Stored under the KEK store with a row MAC, awaiting the site.
    assert.deepEqual(
      (await rows(SITE)).map((k) => [k.version, k.state, k.has_blob, k.wrapped_under]),
      [
        [1, 'active', true, null],
        [2, 'pending_confirmation', true, v1.id],
      ],
    );
    const again = await rotate(SITE, TARGET);
    assert.deepEqual([again.status, code(again)], [409, 'KEK_ROTATION_PENDING']);
    // Not confirmed yet: packages still go under v1.
    assertOpensUnder(await push('tkr-during', SITE), v1.id);
  });

  it('a KCV mismatch refuses the new version for good (blob wiped, audited); packages stay under the current KEK', async () => {
    const [, v2] = await rows(SITE);
    const real = (await sql<{ kcv: string }>(`SELECT kcv FROM target_keks WHERE id = $1`, [v2.id]))[0].kcv;
    const wrong = real === '000000' ? '000001' : '000000';
    assert.equal(await confirm(SITE, v2, wrong), 'kcv_mismatch');
    assert.deepEqual(
      (await rows(SITE)).map((k) => [k.version, k.state, k.has_blob]),
      [
        [1, 'active', true],
        [2, 'refused', false],
      ],
    );
    const refused = await audit('target_kek.rotation_refused', SITE);
    assert.deepEqual([refused.length, refused[0].details.kekId, refused[0].details.reported], [1, v2.id, wrong]);
    // Refused stays refused, even with the right KCV later.
    await assert.rejects(confirm(SITE, v2, real), (e: { code?: string }) => e.code === 'TARGET_KEK_STATE_INVALID');
    assertOpensUnder(await push('tkr-refused', SITE), v1.id);
  });

  it('a matching KCV activates the new version: the previous one is retired and later packages are wrapped under the new one', async () => {
    const r = await rotate(SITE, TARGET);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    v3 = await rotationSent(SITE);
    assert.deepEqual([v3.kek.version, v3.wrappedUnder.id, v3.retire], [3, v1.id, []]);
    assert.equal(await confirm(SITE, v3.kek, v3.kek.kcv), 'rotated');
    assert.equal(await confirm(SITE, v3.kek, v3.kek.kcv), 'already_active', 'a redelivered confirmation changes nothing');
    assert.deepEqual(
      (await rows(SITE)).map((k) => [k.version, k.state]),
      [
        [1, 'retired'],
        [2, 'refused'],
        [3, 'active'],
      ],
    );
    const rotated = await audit('target_kek.rotated', SITE);
    assert.deepEqual([rotated.length, rotated[0].details.kcv, rotated[0].details.retired], [1, v3.kek.kcv, `${v1.id}:v1`]);
    assertOpensUnder(await push('tkr-after', SITE), v3.kek.id);
    // The operator's view names the new KEK.
    const list = await h.call('GET', `/v1/listeners/${SITE}/targets`, { token: ko });
    const t = (list.body as { targets: Array<{ name: string; kek: { state: string; kekId: string; version: number } }> }).targets.find((x) => x.name === TARGET)!;
    assert.deepEqual([t.kek.state, t.kek.kekId, t.kek.version], ['active', v3.kek.id, 3]);
  });

  it('the next rotation, which makes the site destroy v1, waits while packages issued before v3 was active are unconfirmed; then v1 is named and recorded destroyed', async () => {
    const unconfirmed = async () =>
      (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM distributions WHERE listener_id = $1 AND target = $2 AND state IN ('queued', 'sent')`, [SITE, TARGET]))[0].n;
    assert.ok((await unconfirmed()) > 0, 'packages to the target are in flight (no site answers here)');
    const blocked = await rotate(SITE, TARGET);
    assert.deepEqual([blocked.status, code(blocked)], [409, 'KEK_ROTATION_BLOCKED']);
    assert.equal((await rows(SITE)).length, 3, 'no KEK row was made');
    // As if their receipts had come.
    await h.fx.asOwner(`UPDATE distributions SET state = 'confirmed', confirmed_at = now() WHERE listener_id = $1 AND target = $2`, [SITE, TARGET]);
    const r = await rotate(SITE, TARGET);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual((r.body as { retires: unknown[] }).retires, [{ kekId: v1.id, version: 1 }]);
    const v4 = await rotationSent(SITE);
    assert.deepEqual([v4.kek.version, v4.wrappedUnder.id, v4.retire], [4, v3.kek.id, [{ id: v1.id, version: 1 }]]);
    assert.equal(await confirm(SITE, v4.kek, v4.kek.kcv), 'rotated');
    assert.deepEqual(
      (await rows(SITE)).map((k) => [k.version, k.state, k.has_blob]),
      [
        [1, 'destroyed', false],
        [2, 'refused', false],
        [3, 'retired', true],
        [4, 'active', true],
      ],
    );
    const rotated = await audit('target_kek.rotated', SITE);
    assert.equal(rotated[1].details.destroyedAtSite, `${v1.id}:v1`);
    assertOpensUnder(await push('tkr-v4', SITE), v4.kek.id);
  });

  it('targets that cannot rotate this way are refused: the root-KEK target, a keystore (transit KEK), an unknown target, a KEK not yet confirmed', async () => {
    const hsm = await rotate(SITE, 'hsm');
    assert.deepEqual([hsm.status, code(hsm)], [409, 'TARGET_KEK_NOT_ROTATABLE']);
    const unknown = await rotate(SITE, 'no-such-target');
    assert.deepEqual([unknown.status, code(unknown)], [404, 'TARGET_UNKNOWN']);
    await h.fx.asOwner(`UPDATE listeners SET targets = targets || '[{"name":"ks","kind":"keystore"}]'::jsonb WHERE id = $1`, [SITE]);
    const ks = await rotate(SITE, 'ks');
    assert.deepEqual([ks.status, code(ks)], [409, 'TARGET_KEK_NOT_ROTATABLE']);
    // Approved but not confirmed by the site: nothing to rotate under, and the approval itself is pending.
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const reg = await h.fx.rt.container.resolve(RegisterTargetKekRequest).execute({
      type: MESSAGE_TYPES.targetKekRequest,
      id: randomUUID(),
      listenerId: 'tkr-other',
      issuedAt: new Date().toISOString(),
      target: 'tgt-y',
      kind: 'pkcs11',
      transportKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
      oaepHash: 'sha1',
    });
    assert.equal((await post(`/v1/listeners/tkr-other/targets/tgt-y/approve`, { fingerprint: reg.fingerprint })).status, 200);
    const early = await rotate('tkr-other', 'tgt-y');
    assert.deepEqual([early.status, code(early)], [409, 'KEK_ROTATION_PENDING']);
    // An auditor may not rotate.
    const auditor = await h.operator('aud', ['auditor']);
    const denied = await h.call('POST', `/v1/listeners/${SITE}/targets/${TARGET}/rotate-kek`, { token: auditor, body: {} });
    assert.equal(denied.status, 403);
    assert.equal((await rows('tkr-other', 'tgt-y')).length, 1, 'nothing was made by the refused calls');
  });

  it('a current target KEK row that does not match its row MAC carries nothing: ROW_MAC_INVALID, no row, no message', async () => {
    const [active] = (await rows(SITE)).filter((k) => k.state === 'active');
    const outbox = async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE subject = $1`, [`keyhub.v1.to.${SITE}.target_kek`]))[0].n;
    const before = await outbox();
    // Bound to its target: the same row presented as another target's KEK does not verify.
    await h.fx.asOwner(`UPDATE target_keks SET target = 'tgt-moved' WHERE id = $1`, [active.id]);
    await h.fx.asOwner(`UPDATE listeners SET targets = targets || '[{"name":"tgt-moved","kind":"pkcs11"}]'::jsonb WHERE id = $1`, [SITE]);
    try {
      const r = await rotate(SITE, 'tgt-moved');
      assert.deepEqual([r.status, code(r)], [409, 'ROW_MAC_INVALID']);
      assert.equal((await rows(SITE, 'tgt-moved')).length, 1);
      assert.equal(await outbox(), before);
    } finally {
      await h.fx.asOwner(`UPDATE target_keks SET target = $2 WHERE id = $1`, [active.id, TARGET]);
    }
  });
});
