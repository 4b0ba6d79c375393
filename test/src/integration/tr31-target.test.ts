/**
 * The TR-31 payment-HSM TARGET (listener/src/targets/tr31-target.ts), in
 * process against SoftHSM2 tokens and the payment-HSM stand-in
 * (test/src/fixtures/payment-hsm): packages as the hub makes them (the key
 * made in the hub token, wrapped under the target's transit KEK, installed
 * in the site token by the KCV-confirmed exchange) are unwrapped in the site
 * token as session objects, checked by KCV, and delivered as TR-31 key
 * blocks under a KBPK the listener made in its token and established with
 * the stand-in (RSA-OAEP to its pinned transport key, KCV-confirmed). The
 * stand-in opens each block with the Python opener (Python `cryptography`,
 * no code of ours) and computes the KCV with node:crypto: it is the hub's,
 * and the header carries the policy's usage, mode of use and exportability.
 * Every clear buffer is zeroed; faults have their codes and lose nothing.
 */
import { strict as assert } from 'node:assert';
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KEY_ALGORITHM_INFO, Tr31Secrets, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { aesKcv, KeyhubError, Pkcs11Hsm, secretKcv, type KeyHandle, type SecretKcvMethod, type SecretKeyType } from '@keyhub/shared';
import { listenerConfigSchema, type Tr31TargetConfig } from '@keyhub/listener/dist/config';
import type { ImportRequest } from '@keyhub/listener/dist/targets/target';
import { Tr31Target, type Tr31BlockVersion } from '@keyhub/listener/dist/targets/tr31-target';
import { transitTarget } from '@keyhub/listener/dist/targets/transit-targets';
import { TransitKeys } from '@keyhub/listener/dist/targets/transit-keys';
import { createSoftHsm, type SoftHsmEnv } from '../env';
import { startPaymentHsm, type PaymentHsmStandin } from '../fixtures/payment-hsm/payment-hsm-standin';

const code = (c: string) => (e: unknown) => KeyhubError.is(e, c as never) || assert.fail(`expected ${c}, got ${KeyhubError.from(e).code}: ${(e as Error).message}`);

/** Records every buffer a block build held, to see them zeroed after. */
class RecordingSecrets extends Tr31Secrets {
  constructor(private readonly into: Buffer[]) {
    super();
  }
  override hold<T extends Buffer>(buffer: T): T {
    this.into.push(buffer);
    return super.hold(buffer);
  }
}

interface Case {
  algorithm: KeyAlgorithm;
  usages: KeyUsage[];
  exportable: boolean;
  /** The header X9.143 gives such a key: key usage, mode of use, exportability (written out here, not taken from the product's mapping). */
  expect: { keyUsage: string; algorithm: string; modeOfUse: string; exportability: string };
}

const D_CASES: Case[] = [
  { algorithm: 'AES-128', usages: ['encrypt', 'decrypt'], exportable: false, expect: { keyUsage: 'D0', algorithm: 'A', modeOfUse: 'B', exportability: 'N' } },
  { algorithm: 'AES-256', usages: ['wrap', 'unwrap'], exportable: true, expect: { keyUsage: 'K0', algorithm: 'A', modeOfUse: 'B', exportability: 'E' } },
  { algorithm: 'AES-256', usages: ['sign', 'verify'], exportable: false, expect: { keyUsage: 'M6', algorithm: 'A', modeOfUse: 'C', exportability: 'N' } },
  { algorithm: 'TDES-2KEY', usages: ['encrypt'], exportable: false, expect: { keyUsage: 'D0', algorithm: 'T', modeOfUse: 'E', exportability: 'N' } },
  { algorithm: 'TDES-3KEY', usages: ['decrypt'], exportable: true, expect: { keyUsage: 'D0', algorithm: 'T', modeOfUse: 'D', exportability: 'E' } },
  { algorithm: 'HMAC-SHA256', usages: ['sign', 'verify'], exportable: false, expect: { keyUsage: 'M7', algorithm: 'H', modeOfUse: 'C', exportability: 'N' } },
];

const B_CASES: Case[] = [
  { algorithm: 'TDES-2KEY', usages: ['encrypt', 'decrypt'], exportable: false, expect: { keyUsage: 'D0', algorithm: 'T', modeOfUse: 'B', exportability: 'N' } },
  { algorithm: 'TDES-3KEY', usages: ['wrap', 'unwrap'], exportable: true, expect: { keyUsage: 'K0', algorithm: 'T', modeOfUse: 'B', exportability: 'E' } },
];

describe('TR-31 target: keys reach a payment HSM as key blocks it opens independently to the hub KCV', function () {
  this.timeout(180_000);
  let env: SoftHsmEnv;
  let hub: Pkcs11Hsm;
  let site: Pkcs11Hsm;
  let home: string;
  let phsm: PaymentHsmStandin;
  let fingerprint: string;
  const wiped: Buffer[] = [];
  const held: Buffer[] = [];
  /** onWiped calls that carried the key and the KBPK together (the exporter's own calls carry one buffer each). */
  let keyAndKbpkWipes = 0;
  const transit = new Map<string, { keys: TransitKeys; kek: KeyHandle; kekId: string }>();

  before(async () => {
    phsm = await startPaymentHsm();
    fingerprint = createHash('sha256').update(phsm.spki).digest('hex');
    env = await createSoftHsm(['t31-hub', 't31-site']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_T31_HUB_PIN = env.tokens[0].pin;
    process.env.KEYHUB_T31_SITE_PIN = env.tokens[1].pin;
    hub = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 't31-hub', pinEnv: 'KEYHUB_T31_HUB_PIN' });
    site = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 't31-site', pinEnv: 'KEYHUB_T31_SITE_PIN' });
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-t31-home-'));
  });

  after(async () => {
    await phsm?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
    await site?.close();
    await hub?.close();
    await env?.cleanup();
  });

  /** The target-KEK exchange for one target: transport key in the site token, the hub's KEK OAEP-wrapped to it, KCV-confirmed install. */
  async function installTransitKek(name: string): Promise<TransitKeys> {
    const keys = new TransitKeys(site, name);
    const { spki } = await keys.ensureTargetTransportKey(2048);
    const kek = await hub.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const blob = await hub.wrapRsaOaep(await hub.importRsaWrappingKey(spki), kek, 'sha1');
    const kekId = randomUUID();
    assert.equal(await keys.installTargetKek(blob, 'sha1', kekId, 1, (h) => aesKcv(site, h), await aesKcv(hub, kek)), 'stored');
    transit.set(name, { keys, kek, kekId });
    return keys;
  }

  async function target(name: string, version: Tr31BlockVersion, pinned = fingerprint): Promise<Tr31Target> {
    const keys = transit.get(name)?.keys ?? (await installTransitKek(name));
    return new Tr31Target(name, keys, {
      endpoint: phsm.url,
      version,
      transportKeyFingerprint: pinned,
      kbpkOaepHash: 'sha1',
      timeoutMs: 5_000,
      onWiped: (b) => {
        wiped.push(...b);
        if (b.length === 2) keyAndKbpkWipes++;
      },
      secrets: () => new RecordingSecrets(held),
    });
  }

  /** A package as the hub issues one for `targetName`: made in the hub token, its KCV there, wrapped under the target's transit KEK. */
  async function packageFor(targetName: string, c: Pick<Case, 'algorithm' | 'usages' | 'exportable'>, targetKinds: string[] = ['pkcs11', 'tr31']): Promise<ImportRequest> {
    const info = KEY_ALGORITHM_INFO[c.algorithm];
    const h = await hub.generateSecretKey(info.keyType as SecretKeyType, info.lengthBytes, { token: false, extractable: true, sign: info.kcv !== 'tdes-ecb', encrypt: info.kcv === 'tdes-ecb' });
    const kcv = await secretKcv(hub, h, info.kcv as SecretKcvMethod);
    const kek = transit.get(targetName)!;
    return {
      key: { id: randomUUID(), name: `t31-${c.algorithm.toLowerCase()}`, version: 1, algorithm: c.algorithm, length: info.lengthBytes, usages: c.usages, exportable: c.exportable, kcv, targetKinds },
      wrapped: { kekId: kek.kekId, kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(kek.kek, h) },
    };
  }

  const labelOf = (p: ImportRequest): string => `${p.key.id}.v${p.key.version}`;
  const kbpksInToken = async (name: string) => site.findKeys({ class: 'secret', id: Buffer.from(`keyhub-tr31-kbpk:${name}`), token: true });
  const allZero = (bufs: Buffer[]): boolean => bufs.every((b) => b.every((x) => x === 0));
  const count = (what: string): number => phsm.requests.filter((r) => r === what).length;

  for (const [version, cases] of [
    ['D', D_CASES],
    ['B', B_CASES],
  ] as const) {
    it(`version ${version}: ${cases.map((c) => c.algorithm).join(', ')} arrive with the hub KCV and the policy in the header; the KBPK is established once`, async () => {
      const name = `pay-${version.toLowerCase()}`;
      const t = await target(name, version);
      wiped.length = 0;
      held.length = 0;
      const kbpkPosts = count('POST /kbpk');
      const before = (await site.findKeys({ class: 'secret', token: false })).length;
      // When each block reaches the payment HSM, the key and KBPK read out for it are zero already.
      const arrivals: Array<{ zero: boolean; wipes: number }> = [];
      keyAndKbpkWipes = 0;
      phsm.onKeyBlock = () => arrivals.push({ zero: allZero(wiped) && allZero(held), wipes: keyAndKbpkWipes });
      for (const c of cases) {
        const p = await packageFor(name, c);
        const r = await t.import(p);
        assert.deepEqual(r, { outcome: 'imported', kcv: p.key.kcv });
        const k = phsm.keys.get(labelOf(p));
        assert.ok(k, `${c.algorithm} is held by the payment HSM`);
        // The independent opener's key, KCV by node:crypto at the stand-in: the hub's (computed in SoftHSM2).
        assert.equal(k.kcv, p.key.kcv, `${c.algorithm} KCV`);
        assert.equal(k.keyHex.length, 2 * p.key.length);
        assert.deepEqual({ keyUsage: k.header.keyUsage, algorithm: k.header.algorithm, modeOfUse: k.header.modeOfUse, exportability: k.header.exportability }, c.expect);
        assert.equal(k.header.version, version);
        assert.equal(k.header.keyVersion, '01');
        // Again: already there, nothing sent.
        const posts = count('POST /keys');
        assert.deepEqual(await t.import(p), { outcome: 'already_present', kcv: p.key.kcv });
        assert.equal(count('POST /keys'), posts);
      }
      phsm.onKeyBlock = undefined;
      assert.equal(arrivals.length, cases.length);
      arrivals.forEach((a, i) => assert.ok(a.zero && a.wipes === i + 1, `block ${i + 1}: the clear key and KBPK were wiped before it was sent`));
      assert.equal(count('POST /kbpk') - kbpkPosts, 1, 'one KBPK per target, established once');
      const [kbpk] = await kbpksInToken(name);
      assert.ok(kbpk);
      const info = await site.keyInfo(kbpk);
      assert.equal(info.keyType, version === 'D' ? 'aes' : 'des3');
      assert.ok(info.token && info.sensitive && info.extractable && !info.wrap && !info.unwrap && !info.decrypt, 'the KBPK: a sensitive token object that wraps nothing');
      const id = info.label.split(':').pop()!;
      const standinKbpk = phsm.kbpks.get(id)!;
      assert.equal(standinKbpk.kcv, version === 'D' ? await aesKcv(site, kbpk) : await secretKcv(site, kbpk, 'tdes-ecb'));
      // Clear bytes: each key and the KBPK read out, each block's intermediates, all zeroed.
      const kbpkLength = version === 'D' ? 32 : 24;
      assert.equal(wiped.filter((b) => b.length === kbpkLength).length >= cases.length, true);
      assert.ok(wiped.length >= 2 * cases.length && allZero(wiped), 'every key and KBPK buffer is zeroed');
      assert.ok(held.length > 0 && allZero(held), 'the derived keys and padded payloads are zeroed');
      // No delivered key stays in the token: at most the exporter's transfer key.
      assert.ok((await site.findKeys({ class: 'secret', token: false })).length <= before + 1);
      await t.close();
    });
  }

  it('an AES key to a version B target, mixed usages and a policy without tr31 are refused before anything is sent', async () => {
    const b = await target('pay-b', 'B');
    const posts = count('POST /keys');
    await assert.rejects(b.import(await packageFor('pay-b', { algorithm: 'AES-128', usages: ['encrypt'], exportable: false })), code('TR31_KBPK_INVALID'));
    const d = await target('pay-d', 'D');
    await assert.rejects(d.import(await packageFor('pay-d', { algorithm: 'AES-128', usages: ['encrypt', 'sign'], exportable: false })), code('TR31_USAGE_UNMAPPABLE'));
    await assert.rejects(d.import(await packageFor('pay-d', { algorithm: 'AES-128', usages: ['encrypt'], exportable: false }, ['pkcs11', 'keystore'])), code('TARGET_KIND_NOT_ALLOWED'));
    assert.equal(count('POST /keys'), posts);
  });

  it('a transport key other than the pinned one: no KBPK is sent, nothing stays in the token, health says why', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'der', type: 'spki' });
    const t = await target('pay-pin', 'D', createHash('sha256').update(other).digest('hex'));
    const kbpkPosts = count('POST /kbpk');
    await assert.rejects(t.import(await packageFor('pay-pin', D_CASES[0])), code('TR31_TRANSPORT_KEY_MISMATCH'));
    assert.equal(count('POST /kbpk'), kbpkPosts, 'no KBPK sent');
    assert.equal((await kbpksInToken('pay-pin')).length, 0, 'the KBPK made for it is destroyed');
    assert.deepEqual(await t.health(), { healthy: false, detail: 'TR31_TRANSPORT_KEY_MISMATCH' });
    assert.deepEqual(await (await target('pay-d', 'D')).health(), { healthy: true });
  });

  it('a KBPK the payment HSM gives another KCV is discarded; the next delivery establishes a new one', async () => {
    const t = await target('pay-kcv', 'D');
    phsm.faults.wrongKbpkKcv = true;
    const p = await packageFor('pay-kcv', D_CASES[1]);
    await assert.rejects(t.import(p), code('TR31_KBPK_KCV_MISMATCH'));
    assert.equal((await kbpksInToken('pay-kcv')).length, 0, 'the KBPK is discarded');
    assert.equal(phsm.keys.has(labelOf(p)), false);
    assert.deepEqual(await t.import(p), { outcome: 'imported', kcv: p.key.kcv });
    assert.equal((await kbpksInToken('pay-kcv')).length, 1);
  });

  it('a payment HSM that answers another KCV for the key: KCV_MISMATCH, and the key it holds is deleted', async () => {
    const t = await target('pay-d', 'D');
    const p = await packageFor('pay-d', D_CASES[1]);
    phsm.faults.wrongKeyKcv = true;
    await assert.rejects(t.import(p), code('KCV_MISMATCH'));
    assert.equal(phsm.keys.has(labelOf(p)), false);
    assert.deepEqual(await t.import(p), { outcome: 'imported', kcv: p.key.kcv });
  });

  for (const what of ['exportability', 'ciphertext'] as const) {
    it(`a block tampered in flight (${what}) fails the payment HSM's MAC check, reported with its code; the next delivery arrives`, async () => {
      const t = await target('pay-d', 'D');
      const p = await packageFor('pay-d', D_CASES[0]);
      wiped.length = 0;
      held.length = 0;
      phsm.faults.tamper = { what, count: 1 };
      const err = await t.import(p).then(
        () => assert.fail('a tampered block was accepted'),
        (e: unknown) => KeyhubError.from(e),
      );
      assert.equal(err.code, 'TR31_MAC_INVALID');
      assert.equal(err.details?.paymentHsmError, 'TR31_MAC_INVALID');
      assert.equal(phsm.keys.has(labelOf(p)), false, 'nothing stored');
      assert.ok(wiped.length >= 2 && allZero(wiped) && held.length > 0 && allZero(held), 'clear bytes wiped on failure too');
      assert.deepEqual(await t.import(p), { outcome: 'imported', kcv: p.key.kcv });
      assert.equal(phsm.keys.get(labelOf(p))!.header.exportability, 'N');
    });
  }

  it('the payment HSM down or busy is a passing failure; once back, the same package arrives', async () => {
    const t = await target('pay-d', 'D');
    const p = await packageFor('pay-d', D_CASES[2]);
    await phsm.stop();
    try {
      const err = await t.import(p).then(
        () => assert.fail('imported with the payment HSM down'),
        (e: unknown) => KeyhubError.from(e),
      );
      assert.equal(err.code, 'TARGET_UNAVAILABLE');
      assert.equal(err.retryable, true);
      assert.deepEqual(await t.health(), { healthy: false, detail: 'TARGET_UNAVAILABLE' });
    } finally {
      await phsm.start();
    }
    phsm.faults.unavailable = 1;
    await assert.rejects(t.import(p), code('TARGET_UNAVAILABLE'));
    assert.deepEqual(await t.import(p), { outcome: 'imported', kcv: p.key.kcv });
    assert.deepEqual(await t.health(), { healthy: true });
  });

  it('a payment HSM that lost the KBPK gets it again (same KBPK, same KCV) and the key arrives', async () => {
    const t = await target('pay-d', 'D');
    const [kbpk] = await kbpksInToken('pay-d');
    const id = (await site.keyInfo(kbpk)).label.split(':').pop()!;
    const kcv = phsm.kbpks.get(id)!.kcv;
    phsm.kbpks.clear();
    const p = await packageFor('pay-d', D_CASES[3]);
    assert.deepEqual(await t.import(p), { outcome: 'imported', kcv: p.key.kcv });
    assert.equal(phsm.kbpks.get(id)?.kcv, kcv);
    // A new listener process (a new target object) finds the KBPK in the token and confirms it without sending it.
    const posts = count('POST /kbpk');
    const fresh = await target('pay-d', 'D');
    const q = await packageFor('pay-d', D_CASES[0]);
    assert.deepEqual(await fresh.import(q), { outcome: 'imported', kcv: q.key.kcv });
    assert.equal(count('POST /kbpk'), posts);
    assert.equal((await kbpksInToken('pay-d')).length, 1);
  });

  it('lifecycle: destroy and compromise remove the key, suspend removes it, resume finds nothing; inventory follows', async () => {
    const t = await target('pay-d', 'D');
    const a = await packageFor('pay-d', D_CASES[0]);
    const b = await packageFor('pay-d', D_CASES[1]);
    await t.import(a);
    await t.import(b);
    const ref = (p: ImportRequest) => ({ keyId: p.key.id, version: p.key.version });
    const inv = await t.inventory();
    assert.ok(inv.some((i) => i.keyId === a.key.id && i.version === 1 && i.algorithm === 'AES'));
    assert.equal(await t.destroy(ref(a)), true);
    assert.equal(phsm.keys.has(labelOf(a)), false);
    assert.equal(await t.destroy(ref(a)), false);
    assert.equal(await t.resume(ref(b), b.key.usages), 'usages_restored');
    assert.equal(await t.suspend(ref(b)), 'destroyed');
    assert.equal(await t.resume(ref(b), b.key.usages), 'absent');
    assert.equal(await t.compromise(ref(b)), 'absent');
    const c = await packageFor('pay-d', D_CASES[2]);
    await t.import(c);
    assert.equal(await t.deactivate(ref(c), ['verify']), 'destroyed');
    assert.ok(!(await t.inventory()).some((i) => [a, b, c].some((p) => p.key.id === i.keyId)));
  });

  it('from listener configuration: defaults, the pinned fingerprint checked, the target built by the runtime code', async () => {
    const base = {
      id: 'site-t31',
      nats: { servers: ['nats://127.0.0.1:4222'] },
      hubFingerprint: 'a'.repeat(64),
      hsm: { module: env.modulePath, tokenLabel: 't31-site', pinEnv: 'KEYHUB_T31_SITE_PIN' },
    };
    const parsed = listenerConfigSchema.parse({ ...base, targets: [{ name: 'pay-cfg', kind: 'tr31', endpoint: phsm.url, transportKeyFingerprint: `sha256:${fingerprint.toUpperCase()}` }] });
    const t = parsed.targets[0] as Tr31TargetConfig;
    assert.equal(t.version, 'D');
    assert.equal(t.kbpkOaepHash, 'sha1');
    assert.equal(listenerConfigSchema.safeParse({ ...base, targets: [{ name: 'x', kind: 'tr31', endpoint: phsm.url, transportKeyFingerprint: 'abc' }] }).success, false);
    assert.equal(listenerConfigSchema.safeParse({ ...base, targets: [{ name: 'x', kind: 'tr31', endpoint: phsm.url, transportKeyFingerprint: fingerprint, version: 'A' }] }).success, false);
    await installTransitKek('pay-cfg');
    const built = transitTarget(t, site, { home, onWiped: (b) => wiped.push(...b) });
    assert.equal(built.target.kind, 'tr31');
    const p = await packageFor('pay-cfg', B_CASES[0]);
    assert.deepEqual(await built.target.import(p), { outcome: 'imported', kcv: p.key.kcv });
    assert.equal(phsm.keys.get(labelOf(p))!.kcv, p.key.kcv);
    await (built.target as Tr31Target).close();
  });
});
