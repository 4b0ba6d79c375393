import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import * as path from 'node:path';
import { encodeEnvelope, MESSAGE_TYPES, targetTransportFingerprint, type Message, type SignedEnvelope, type TargetKekConfirm, type TargetKekMessage, type TargetKekRotation } from '@keyhub/protocol';
import { aesKcv, Pkcs11Hsm, type KeyHandle } from '@keyhub/shared';
import type { TargetConfig } from '@keyhub/listener/dist/config';
import type { InboxResult } from '@keyhub/listener/dist/inbox';
import { ListenerKeys, kekLabel } from '@keyhub/listener/dist/listener-keys';
import { Pkcs11Target } from '@keyhub/listener/dist/targets/pkcs11-target';
import { FuzzSite, SITE } from '../fuzz/lib/site';

const TARGET = 'tgt-r';

/**
 * The listener's side of a target KEK rotation, in process on real SoftHSM2
 * tokens (the site's own and a target token) with the real hub signing key:
 * the new KEK is unwrapped inside the target token under the current one
 * and confirmed; a package under the previous KEK still imports; only the
 * older KEKs the hub names are destroyed, never the one the rotation
 * travelled under nor the new one, even when a signed message names them;
 * a KCV mismatch, and a transit (keystore) target, install nothing and earn
 * no confirmation.
 */
describe('target KEK rotation at the listener (SoftHSM2 target token)', function () {
  this.timeout(60_000);
  let site: FuzzSite;
  let tgtHsm: Pkcs11Hsm;
  let tgtKeys: ListenerKeys;
  /** The target KEKs as the hub holds them (session objects of the hub token), by version. */
  const hubKeks = new Map<number, { id: string; version: number; handle: KeyHandle; kcv: string }>();

  before(async () => {
    site = await FuzzSite.create();
    assert.deepEqual(await deliver(await site.rootKekMessage()), { kind: 'root_kek', result: 'stored' });
    const tok = await site.soft.addToken('fz-tkr');
    process.env.KEYHUB_FZ_TKR_PIN = tok.pin;
    // A second instance of the module (a copy at another path), as a target with its own module is: it sees the token added after the first one started.
    const moduleCopy = path.join(site.soft.dir, 'libsofthsm2-target.so');
    await copyFile(site.soft.modulePath, moduleCopy);
    tgtHsm = await Pkcs11Hsm.open({ module: moduleCopy, tokenLabel: tok.label, pinEnv: 'KEYHUB_FZ_TKR_PIN', sessions: 1, translateWorker: false });
    tgtKeys = new ListenerKeys(tgtHsm);
    const config = {
      name: TARGET,
      kind: 'pkcs11',
      hsm: { module: moduleCopy, tokenLabel: tok.label, pinEnv: 'KEYHUB_FZ_TKR_PIN' },
      oaepHash: 'sha1',
      transportKeyBits: 2048,
    } as unknown as TargetConfig;
    const ks = { name: 'ks', kind: 'keystore' } as unknown as TargetConfig;
    site.inbox.targetKeks!.tokens.set(TARGET, { config, keys: tgtKeys });
    site.inbox.targetKeks!.tokens.set('ks', { config: ks, keys: tgtKeys });
    // The first target KEK, as approval sends it: RSA-OAEP to the transport key made in the target token.
    const { spki } = await tgtKeys.ensureTargetTransportKey(2048);
    const v1 = await hubKek(1);
    const transport = await site.hubHsm.importRsaWrappingKey(spki);
    const blob = await site.hubHsm.wrapRsaOaep(transport, v1.handle, 'sha1');
    await site.hubHsm.destroy(transport);
    const msg: TargetKekMessage = {
      type: MESSAGE_TYPES.targetKek,
      id: randomUUID(),
      listenerId: SITE,
      issuedAt: new Date().toISOString(),
      target: TARGET,
      transportFingerprint: targetTransportFingerprint(SITE, TARGET, spki.toString('base64')),
      kek: { id: v1.id, version: 1, kcv: v1.kcv, mechanism: 'RSA-OAEP', oaepHash: 'sha1', blob: blob.toString('base64') },
    };
    assert.deepEqual(await deliver(await site.keyring.sign(msg)), { kind: 'target_kek', target: TARGET, result: 'stored' });
  });

  after(async () => {
    for (const k of hubKeks.values()) await site?.hubHsm.destroy(k.handle).catch(() => undefined);
    await tgtHsm?.close();
    await site?.close();
  });

  function deliver(envelope: SignedEnvelope<Message>): Promise<InboxResult> {
    return site.inbox.handle({ data: Buffer.from(encodeEnvelope(envelope)), streamSeq: site.nextStreamSeq() });
  }

  async function hubKek(version: number): Promise<{ id: string; version: number; handle: KeyHandle; kcv: string }> {
    const handle = await site.hubHsm.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const k = { id: randomUUID(), version, handle, kcv: await aesKcv(site.hubHsm, handle) };
    hubKeks.set(version, k);
    return k;
  }

  /** A rotation as the hub makes it: the next KEK wrapped (AES-KWP) under `under`, with the retire list given, signed by the hub. */
  async function rotation(under: number, next: { id: string; version: number; handle: KeyHandle; kcv: string }, retire: number[], over: Partial<TargetKekRotation> = {}) {
    const u = hubKeks.get(under)!;
    const blob = await site.hubHsm.wrapKwp(u.handle, next.handle);
    return site.keyring.sign<TargetKekRotation>({
      type: MESSAGE_TYPES.targetKekRotation,
      id: randomUUID(),
      listenerId: SITE,
      issuedAt: new Date().toISOString(),
      target: TARGET,
      wrappedUnder: { id: u.id, version: u.version },
      kek: { id: next.id, version: next.version, kcv: next.kcv, mechanism: 'AES-KWP', blob: blob.toString('base64') },
      retire: retire.map((v) => ({ id: hubKeks.get(v)!.id, version: v })),
      ...over,
    });
  }

  const kekLabels = async (): Promise<string[]> =>
    (await Promise.all((await tgtHsm.findKeys({ class: 'secret', token: true })).map((h) => tgtHsm.keyInfo(h))))
      .map((i) => i.label)
      .filter((l) => l.startsWith('keyhub-kek:'))
      .sort();
  const labelOf = (v: number): string => kekLabel(hubKeks.get(v)!.id, v);
  const confirmed = (): string[] =>
    site.published.filter((p) => p.kind === 'target_kek' && p.envelope.payload.type === MESSAGE_TYPES.targetKekConfirm).map((p) => (p.envelope.payload as TargetKekConfirm).kekId);

  /** A key wrapped under target KEK `v`, imported into the target token by the PKCS#11 target, with its KCV checked there. */
  async function importUnder(v: number): Promise<string> {
    const kek = hubKeks.get(v)!;
    const key = await site.hubHsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    try {
      const kcv = await aesKcv(site.hubHsm, key);
      const blob = await site.hubHsm.wrapKwp(kek.handle, key);
      const target = new Pkcs11Target(TARGET, tgtHsm, tgtKeys, 'tkr.');
      const id = randomUUID();
      const r = await target.import({
        key: { id, name: `tkr-${v}-${id.slice(0, 8)}`, version: 1, algorithm: 'AES-256', length: 32, usages: ['encrypt', 'decrypt'], exportable: false, kcv },
        wrapped: { kekId: kek.id, kekVersion: v, mechanism: 'AES-KWP', blob },
      });
      assert.equal(r.kcv, kcv);
      return kcv;
    } finally {
      await site.hubHsm.destroy(key);
    }
  }

  it('installs the next KEK in the target token under the current one and confirms it; packages under either version import', async () => {
    const v2 = await hubKek(2);
    const r = await deliver(await rotation(1, v2, []));
    assert.deepEqual(r, { kind: 'target_kek', target: TARGET, result: 'stored' });
    assert.ok(confirmed().includes(v2.id), 'confirmed, signed');
    const c = site.published.at(-1)!.envelope.payload as TargetKekConfirm;
    assert.deepEqual([c.target, c.kekVersion, c.kcv], [TARGET, 2, v2.kcv]);
    assert.deepEqual(await kekLabels(), [labelOf(1), labelOf(2)].sort());
    // Installed with the KEK policy: unwrap only, sensitive, never extractable.
    const [h] = await tgtHsm.findKeys({ class: 'secret', label: labelOf(2), token: true });
    const info = await tgtHsm.keyInfo(h);
    assert.deepEqual([info.unwrap, info.wrap, info.encrypt, info.decrypt, info.sign, info.sensitive, info.extractable], [true, false, false, false, false, true, false]);
    // Not in the site's own token.
    assert.equal((await site.siteHsm.findKeys({ class: 'secret', label: labelOf(2), token: true })).length, 0);
    await importUnder(1);
    await importUnder(2);
    // Delivered again: present, confirmed again, nothing new.
    assert.deepEqual(await deliver(await rotation(1, v2, [])), { kind: 'target_kek', target: TARGET, result: 'present' });
  });

  it('destroys only the older KEKs named: never the one it travels under nor the new one, even when the signed list names them', async () => {
    const v3 = await hubKek(3);
    // Names v1 (older: goes), v2 (travels under: stays) and v3 (itself: stays).
    const r = await deliver(await rotation(2, v3, [1, 2, 3]));
    assert.deepEqual(r, { kind: 'target_kek', target: TARGET, result: 'stored' });
    assert.deepEqual(await kekLabels(), [labelOf(2), labelOf(3)].sort());
    await importUnder(2);
    await importUnder(3);
    await assert.rejects(importUnder(1), (e: { code?: string }) => e.code === 'KEK_UNKNOWN');
  });

  it('a KCV that does not match, a KEK not held, and a transit target install nothing and earn no confirmation', async () => {
    const before = await kekLabels();
    const signs = site.signs;
    const v4 = await hubKek(4);
    // Signed by the hub, but naming a KCV other than the blob's.
    const good = (await rotation(3, v4, [2])).payload;
    const mismatched = await site.keyring.sign<TargetKekRotation>({ ...good, id: randomUUID(), kek: { ...good.kek, kcv: v4.kcv === '000000' ? '000001' : '000000' } });
    const cases: Array<[SignedEnvelope<TargetKekRotation>, string]> = [
      [mismatched, 'KCV_MISMATCH'],
      [await rotation(3, v4, [2], { wrappedUnder: { id: randomUUID(), version: 3 } }), 'KEK_UNKNOWN'],
      [await rotation(3, v4, [2], { target: 'ks' }), 'TARGET_KEK_NOT_ROTATABLE'],
      [await rotation(3, v4, [2], { target: 'nope' }), 'TARGET_UNKNOWN'],
    ];
    for (const [env, code] of cases) assert.deepEqual(await deliver(env), { kind: 'dropped', code });
    assert.deepEqual(await kekLabels(), before, 'nothing installed, nothing destroyed');
    assert.equal(site.signs, signs, 'no confirmation signed');
    assert.ok(!confirmed().includes(v4.id));
  });
});
