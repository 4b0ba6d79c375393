/**
 * The keystore TARGET (listener/src/targets/keystore-target.ts), in process
 * against SoftHSM2 tokens: packages as the hub makes them (the key made in
 * the hub token, wrapped under the target's transit KEK, which was installed
 * in the site token by RSA-OAEP and confirmed by KCV, as the target-KEK
 * exchange does) are unwrapped in the site token as session objects, checked
 * by KCV there, and written into PKCS#12 and JCEKS files that Java's own
 * keytool lists and a javac-compiled program reads back with the hub's KCV.
 * Rotation adds the new alias, destroy removes the entry; a backlog is
 * written in few rewrites; every clear buffer is wiped; failures have their
 * codes and lose nothing. Key pairs (RSA, EC) made in the hub token, with a
 * chain the hub CA (hub/src/crypto/ca, keys in the same hub token) issued,
 * land as PrivateKeyEntries with their chain of 3, read by keytool, Java and
 * OpenSSL.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomUUID, verify, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KEY_ALGORITHM_INFO, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { aesKcv, KeyhubError, Pkcs11Hsm, secretKcv, spkiKcv, type KeyHandle, type SecretKcvMethod, type SecretKeyType } from '@keyhub/shared';
import { HubCa } from '@keyhub/hub/dist/crypto/ca';
import { createDataSource } from '@keyhub/hub/dist/store/data-source';
import type { DataSource } from 'typeorm';
import { ListenerKeys } from '@keyhub/listener/dist/listener-keys';
import { KeystoreFile, type KeystoreType } from '@keyhub/listener/dist/targets/keystore';
import { KeystoreTarget } from '@keyhub/listener/dist/targets/keystore-target';
import type { ImportRequest } from '@keyhub/listener/dist/targets/target';
import { TransitExporter, unwrapChecked } from '@keyhub/listener/dist/targets/transit-import';
import { TransitKeys } from '@keyhub/listener/dist/targets/transit-keys';
import { createSoftHsm, createTestDatabase, type SoftHsmEnv, type TestDatabase } from '../env';
import { compileProbe, keytoolEntries, keytoolList, opensslPkcs12Certificates, PROBE_MESSAGE, referenceKcv, runProbe } from './keystore-support';

const PASSWORD = 'Keyhub-target 1!';
const JAVA_TYPE = { pkcs12: 'PKCS12', jceks: 'JCEKS' } as const;
const LOW = { pkcs12KeyIterations: 1000, pkcs12MacIterations: 1000, jceksIterations: 1000 };
const code = (c: string) => (e: unknown) => KeyhubError.is(e, c as never) || assert.fail(`expected ${c}, got ${KeyhubError.from(e).code}: ${(e as Error).message}`);

function immutable(dir: string, on: boolean): void {
  if (process.getuid?.() === 0) execFileSync('chattr', [on ? '+i' : '-i', dir]);
  else fs.chmodSync(dir, on ? 0o500 : 0o700);
}

describe('keystore target: packages under a transit KEK land in PKCS#12 and JCEKS files Java reads', function () {
  this.timeout(180_000);
  let env: SoftHsmEnv;
  let hub: Pkcs11Hsm;
  let site: Pkcs11Hsm;
  let dir: string;
  let home: string;
  let classpath: string;
  const wiped: Buffer[] = [];
  const transit = new Map<string, { keys: TransitKeys; kek: KeyHandle; kekId: string }>();
  let rootKek: KeyHandle;
  let password = PASSWORD;

  before(async () => {
    env = await createSoftHsm(['kst-hub', 'kst-site']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_KST_HUB_PIN = env.tokens[0].pin;
    process.env.KEYHUB_KST_SITE_PIN = env.tokens[1].pin;
    hub = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'kst-hub', pinEnv: 'KEYHUB_KST_HUB_PIN' });
    site = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'kst-site', pinEnv: 'KEYHUB_KST_SITE_PIN' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-kst-'));
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-kst-home-'));
    classpath = compileProbe(fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-kst-java-')));
    // The site's root KEK, as enrollment installs it: packages under it can never reach a keystore.
    const keys = new ListenerKeys(site);
    await keys.ensureEnrollmentKeys(2048);
    rootKek = await hub.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const rootBlob = await hub.wrapRsaOaep(await hub.importRsaWrappingKey(await keys.transportSpki()), rootKek, 'sha1');
    await keys.unwrapRootKek(rootBlob, 'sha1', 'root-kek', 1, (h) => aesKcv(site, h), await aesKcv(hub, rootKek));
  });

  after(async () => {
    for (const d of [dir, home]) if (d) fs.rmSync(d, { recursive: true, force: true });
    await site?.close();
    await hub?.close();
    await env?.cleanup();
  });

  /** The target-KEK exchange for one target: transport key in the site token, the hub's KEK OAEP-wrapped to it, KCV-confirmed install. */
  async function installTransitKek(name: string): Promise<{ keys: TransitKeys; kek: KeyHandle; kekId: string }> {
    const keys = new TransitKeys(site, name);
    const { spki } = await keys.ensureTargetTransportKey(2048);
    const kek = await hub.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const blob = await hub.wrapRsaOaep(await hub.importRsaWrappingKey(spki), kek, 'sha1');
    const kekId = randomUUID();
    assert.equal(await keys.installTargetKek(blob, 'sha1', kekId, 1, (h) => aesKcv(site, h), await aesKcv(hub, kek)), 'stored');
    const t = { keys, kek, kekId };
    transit.set(name, t);
    return t;
  }

  function target(name: string, type: KeystoreType, file: string): KeystoreTarget {
    return new KeystoreTarget(name, transit.get(name)!.keys, {
      type,
      path: file,
      password: () => password,
      ...LOW,
      indexPath: path.join(home, `target-${name}.json`),
      onWiped: (bufs) => wiped.push(...bufs),
    });
  }

  /** A package as the hub issues one for `targetName`: made in the hub token, its KCV there, wrapped under the target's transit KEK. */
  async function packageFor(targetName: string, algorithm: KeyAlgorithm, name: string, version = 1, under?: { kek: KeyHandle; kekId: string }): Promise<ImportRequest> {
    const info = KEY_ALGORITHM_INFO[algorithm];
    const usages: KeyUsage[] = info.kcv === 'hmac-sha256' ? ['sign', 'verify'] : ['encrypt', 'decrypt'];
    const h = await hub.generateSecretKey(info.keyType as SecretKeyType, info.lengthBytes, { token: false, extractable: true, sign: info.kcv !== 'tdes-ecb', encrypt: info.kcv === 'tdes-ecb' });
    const kcv = await secretKcv(hub, h, info.kcv as SecretKcvMethod);
    const kek = under ?? transit.get(targetName)!;
    return {
      key: { id: randomUUID(), name, version, algorithm, length: info.lengthBytes, usages, exportable: false, kcv, targetKinds: ['pkcs11', 'keystore'] },
      wrapped: { kekId: kek.kekId, kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(kek.kek, h) },
    };
  }

  it('the read-out: exact key bytes (OpenSSL CMAC gives the hub KCV) through one transfer key, which is zeroed and destroyed at close', async () => {
    const { keys } = await installTransitKek('readout');
    const seen: Buffer[] = [];
    const exporter = new TransitExporter((b) => seen.push(...b));
    const session = async (): Promise<number> => (await site.findKeys({ class: 'secret', token: false })).length;
    const before = await session();
    for (const alg of ['AES-256', 'AES-128', 'AES-192'] as const) {
      const p = await packageFor('readout', alg, `readout-${alg.toLowerCase()}`);
      (p.key as { targetKinds?: string[] }).targetKinds = ['keystore'];
      const h = await unwrapChecked(keys, p, 'keystore');
      const bytes = await exporter.export(site, h, p);
      await site.destroy(h);
      assert.equal(bytes.length, p.key.length);
      assert.equal(referenceKcv('AES', bytes, dir), p.key.kcv);
      bytes.fill(0);
    }
    assert.equal(await session(), before + 1, 'one transfer key in the token, no delivered key left');
    await exporter.close();
    assert.equal(await session(), before, 'the transfer key is destroyed');
    const transferKeys = seen.filter((b) => b.length === 32 && b.every((x) => x === 0));
    assert.ok(transferKeys.length >= 1 && seen.every((b) => b.every((x) => x === 0)), 'the transfer key and every intermediate buffer were zeroed');
  });

  for (const type of ['pkcs12', 'jceks'] as const) {
    describe(type, () => {
      const name = `ks-${type}`;
      let file: string;
      let ks: KeystoreTarget;
      const pushed: ImportRequest[] = [];

      before(async () => {
        await installTransitKek(name);
        file = path.join(dir, `site.${type === 'pkcs12' ? 'p12' : 'jceks'}`);
        ks = target(name, type, file);
      });

      it('a backlog pushed at once is imported in few rewrites; keytool lists every entry and Java reads each with the hub KCV; every clear buffer is wiped', async () => {
        const algs: KeyAlgorithm[] = ['AES-256', 'AES-128', 'TDES-3KEY', 'TDES-2KEY', 'HMAC-SHA256', 'HMAC-SHA512', 'AES-192', 'AES-256'];
        for (const [i, alg] of algs.entries()) pushed.push(await packageFor(name, alg, `app-${alg.toLowerCase()}-${i}`));
        let commits = 0;
        const commit = KeystoreFile.prototype.commit;
        KeystoreFile.prototype.commit = function (this: KeystoreFile) {
          commits++;
          return commit.call(this);
        };
        wiped.length = 0;
        let results;
        try {
          results = await Promise.all(pushed.map((p) => ks.import(p)));
        } finally {
          KeystoreFile.prototype.commit = commit;
        }
        assert.deepEqual(
          results.map((r) => r.outcome),
          pushed.map(() => 'imported'),
        );
        assert.deepEqual(
          results.map((r) => r.kcv),
          pushed.map((p) => p.key.kcv),
        );
        assert.ok(commits >= 1 && commits < pushed.length, `${pushed.length} keys in ${commits} rewrites`);
        const listed = keytoolList(JAVA_TYPE[type], file, PASSWORD);
        const probed = runProbe(classpath, JAVA_TYPE[type], file, PASSWORD);
        for (const p of pushed) {
          const alias = `${p.key.name}.v1`;
          assert.equal(listed.get(alias), 'SecretKeyEntry', `keytool lists ${alias}`);
          assert.equal(probed.get(alias)?.kcv, p.key.kcv, `Java reads ${alias} with the hub's KCV`);
        }
        assert.equal(probed.get(`${pushed[2].key.name}.v1`)?.algorithm, 'DESede');
        assert.equal(probed.get(`${pushed[4].key.name}.v1`)?.algorithm, 'HmacSHA256');
        assert.ok(wiped.length >= pushed.length, 'the keys read out of the token were handed to custody');
        assert.ok(
          wiped.every((b) => b.every((x) => x === 0)),
          'every buffer that held clear key material is zero-filled',
        );
        assert.equal(fs.statSync(file).mode & 0o777, 0o600);
        // Nothing of the keys stays in the token: session objects only, gone.
        const labels = await Promise.all((await site.findKeys({ class: 'secret', token: true })).map(async (h) => (await site.keyInfo(h)).label));
        assert.ok(labels.length > 0 && labels.every((l) => l.startsWith('keyhub-kek:') || l.startsWith('keyhub-transit-kek:')), `only KEKs are token objects: ${labels.join(', ')}`);
      });

      it('a generic secret (Java has no algorithm name for it) is refused with TARGET_KIND_NOT_ALLOWED', async () => {
        await assert.rejects(ks.import(await packageFor(name, 'GENERIC-256', 'generic')), code('TARGET_KIND_NOT_ALLOWED'));
      });

      it('the same package again is already_present, and the file is not rewritten; another key under the same alias is TARGET_OBJECT_MISMATCH', async () => {
        const before = fs.statSync(file).mtimeMs;
        assert.deepEqual(await ks.import(pushed[0]), { outcome: 'already_present', kcv: pushed[0].key.kcv });
        // A key whose name differs only in case gets the same alias (Java lower-cases them): not this key, refused, nothing replaced.
        const twin = await packageFor(name, 'AES-256', pushed[0].key.name.toUpperCase());
        await assert.rejects(ks.import(twin), code('TARGET_OBJECT_MISMATCH'));
        assert.equal(runProbe(classpath, JAVA_TYPE[type], file, PASSWORD).get(`${pushed[0].key.name}.v1`)?.kcv, pushed[0].key.kcv);
        assert.equal(fs.statSync(file).mtimeMs, before);
      });

      it('rotation adds the new alias beside the old one; destroy removes the old entry (confirmed by keytool and by Java)', async () => {
        const v1 = pushed[0];
        const v2 = await packageFor(name, 'AES-256', v1.key.name, 2);
        v2.key.id = v1.key.id;
        assert.equal((await ks.import(v2)).outcome, 'imported');
        let listed = keytoolList(JAVA_TYPE[type], file, PASSWORD);
        assert.ok(listed.has(`${v1.key.name}.v1`) && listed.has(`${v1.key.name}.v2`));
        assert.equal(runProbe(classpath, JAVA_TYPE[type], file, PASSWORD).get(`${v1.key.name}.v2`)?.kcv, v2.key.kcv);
        assert.equal(await ks.destroy({ keyId: v1.key.id, version: 1 }), true);
        listed = keytoolList(JAVA_TYPE[type], file, PASSWORD);
        assert.ok(!listed.has(`${v1.key.name}.v1`), 'v1 removed');
        assert.ok(listed.has(`${v1.key.name}.v2`), 'v2 stays');
        assert.equal(await ks.destroy({ keyId: v1.key.id, version: 1 }), false, 'a second destroy finds nothing');
        // compromise and suspend remove too (a keystore has no usage flags to turn off).
        assert.equal(await ks.compromise({ keyId: v1.key.id, version: 2 }), 'destroyed');
        assert.equal(await ks.resume({ keyId: v1.key.id, version: 2 }, ['encrypt']), 'absent');
        assert.equal(await ks.suspend({ keyId: pushed[1].key.id, version: 1 }), 'destroyed');
        listed = keytoolList(JAVA_TYPE[type], file, PASSWORD);
        assert.ok(!listed.has(`${v1.key.name}.v2`) && !listed.has(`${pushed[1].key.name}.v1`));
        const inv = await ks.inventory();
        assert.deepEqual(
          inv.map((i) => i.label).sort(),
          pushed
            .slice(2)
            .map((p) => `${p.key.name}.v1`)
            .sort(),
        );
      });

      it('a package under the root KEK is KEK_UNKNOWN, one with a wrong KCV is KCV_MISMATCH, an HSM-only key is TARGET_KIND_NOT_ALLOWED: nothing is written', async () => {
        const before = fs.readFileSync(file);
        const rooted = await packageFor(name, 'AES-256', 'rooted', 1, { kek: rootKek, kekId: 'root-kek' });
        await assert.rejects(ks.import(rooted), (e: unknown) => code('KEK_UNKNOWN')(e) && /transit KEK of its own/.test((e as Error).message));
        const bad = await packageFor(name, 'AES-256', 'bad-kcv');
        bad.key.kcv = bad.key.kcv === '000000' ? '000001' : '000000';
        await assert.rejects(ks.import(bad), code('KCV_MISMATCH'));
        // A key whose policy does not name keystores (absent: HSM only) is refused before it is unwrapped.
        const hsmOnly = await packageFor(name, 'AES-256', 'hsm-only');
        delete (hsmOnly.key as { targetKinds?: unknown }).targetKinds;
        await assert.rejects(ks.import(hsmOnly), code('TARGET_KIND_NOT_ALLOWED'));
        await assert.rejects(ks.import({ ...hsmOnly, key: { ...hsmOnly.key, targetKinds: ['pkcs11', 'aws-kms'] } }), code('TARGET_KIND_NOT_ALLOWED'));
        // Another target's transit KEK does not serve this one.
        const otherName = type === 'pkcs12' ? 'ks-jceks' : 'ks-pkcs12';
        if (transit.has(otherName)) await assert.rejects(ks.import(await packageFor(otherName, 'AES-256', 'foreign')), code('KEK_UNKNOWN'));
        assert.deepEqual(fs.readFileSync(file), before);
      });

      it('a wrong password is KEYSTORE_WRONG_PASSWORD and leaves the file as it was; with the password corrected the same package is imported', async () => {
        const before = fs.readFileSync(file);
        const p = await packageFor(name, 'AES-256', 'after-password');
        password = 'not the password';
        const fresh = target(name, type, file);
        try {
          await assert.rejects(fresh.import(p), code('KEYSTORE_WRONG_PASSWORD'));
          assert.deepEqual(await fresh.health(), { healthy: false, detail: 'KEYSTORE_WRONG_PASSWORD' });
        } finally {
          password = PASSWORD;
        }
        assert.deepEqual(fs.readFileSync(file), before);
        assert.deepEqual(await fresh.health(), { healthy: true });
        assert.equal((await fresh.import(p)).outcome, 'imported');
        assert.equal(runProbe(classpath, JAVA_TYPE[type], file, PASSWORD).get('after-password.v1')?.kcv, p.key.kcv);
      });

      it('a keystore that cannot be written is KEYSTORE_NOT_WRITABLE: the keys read out are wiped, the file unchanged; once writable the same packages import', async () => {
        const sub = fs.mkdtempSync(path.join(dir, `ro-${type}-`));
        const roFile = path.join(sub, 'ro.ks');
        const ro = target(name, type, roFile);
        const seed = await packageFor(name, 'AES-256', 'seed');
        await ro.import(seed);
        const before = fs.readFileSync(roFile);
        const blocked = [await packageFor(name, 'AES-256', 'blocked-a'), await packageFor(name, 'HMAC-SHA256', 'blocked-b')];
        wiped.length = 0;
        immutable(sub, true);
        try {
          const outcomes = await Promise.allSettled(blocked.map((b) => ro.import(b)));
          for (const o of outcomes) assert.ok(o.status === 'rejected' && KeyhubError.is(o.reason, 'KEYSTORE_NOT_WRITABLE'), 'each import fails with KEYSTORE_NOT_WRITABLE');
          assert.equal((await ro.health()).healthy, false);
        } finally {
          immutable(sub, false);
        }
        assert.ok(wiped.length >= 2 && wiped.every((b) => b.every((x) => x === 0)), 'the clear keys were wiped after the failed write');
        assert.deepEqual(fs.readFileSync(roFile), before);
        for (const b of blocked) assert.equal((await ro.import(b)).outcome, 'imported');
        assert.deepEqual([...keytoolList(JAVA_TYPE[type], roFile, PASSWORD).keys()].sort(), ['blocked-a.v1', 'blocked-b.v1', 'seed.v1']);
      });
    });
  }
  describe('key pairs: RSA and EC private keys with the chain the hub CA issued', () => {
    let db: TestDatabase;
    let ds: DataSource;
    let ca: HubCa;

    before(async () => {
      // The hub CA as `keyhub init` makes it: its keys in the hub token, its certificates recorded in the hub's database.
      db = await createTestDatabase('keyhub_kst');
      ds = createDataSource(db.url, 2);
      await ds.initialize();
      await ds.runMigrations();
      ca = (await HubCa.ensure(hub, ds, 'test')).ca;
    });

    after(async () => {
      await ds?.destroy();
      await db?.drop();
    });

    /**
     * A key pair package as the hub issues one for `targetName`: the pair made in the hub token, its KCV that of its SPKI,
     * its certificate from the hub's key-issuing CA (what `keyhub key certificate` issues), the chain leaf, key-issuing CA,
     * root, and the private key wrapped (PKCS#8 under AES-KWP) under the target's transit KEK.
     */
    async function pairFor(targetName: string, algorithm: 'RSA-2048' | 'EC-P256', name: string, withChain = true): Promise<ImportRequest> {
      const info = KEY_ALGORITHM_INFO[algorithm];
      const spec = info.keyType === 'rsa' ? ({ type: 'rsa', bits: info.rsaBits! } as const) : ({ type: 'ec', curve: info.curve! } as const);
      const pair = await hub.generateKeyPair(spec, { private: { token: false, extractable: true }, public: { token: false } });
      const spki = await hub.publicKeySpki(pair.publicKey);
      const leaf = await ca.issueKeyCertificate(spki, { commonName: name }, { actor: 'test' });
      const chain = [leaf.der, ca.issuers['key-issuing'].der, ca.issuers.root.der].map((d) => d.toString('base64'));
      const kek = transit.get(targetName)!;
      return {
        key: {
          id: randomUUID(),
          name,
          version: 1,
          algorithm,
          length: info.lengthBytes,
          usages: ['sign', 'verify'],
          exportable: false,
          kcv: spkiKcv(spki),
          publicKey: spki.toString('base64'),
          ...(withChain ? { certificateChain: chain } : {}),
          targetKinds: ['pkcs11', 'keystore'],
        },
        wrapped: { kekId: kek.kekId, kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(kek.kek, pair.privateKey) },
      };
    }

    const sha256Fingerprint = (b64: string): string => new X509Certificate(Buffer.from(b64, 'base64')).fingerprint256.replace(/:/g, '').toLowerCase();

    for (const type of ['pkcs12', 'jceks'] as const) {
      it(`${type}: RSA-2048 and EC P-256 pairs land as PrivateKeyEntries with their chain of 3; keytool, Java${type === 'pkcs12' ? ' and OpenSSL' : ''} read them with the hub's KCV; the PKCS#8 is wiped`, async () => {
        const name = `pairs-${type}`;
        await installTransitKek(name);
        const file = path.join(dir, `pairs.${type === 'pkcs12' ? 'p12' : 'jceks'}`);
        const ks = target(name, type, file);
        const pairs = [await pairFor(name, 'RSA-2048', `${type}-rsa`), await pairFor(name, 'EC-P256', `${type}-ec`)];
        wiped.length = 0;
        const results = await Promise.all(pairs.map((p) => ks.import(p)));
        assert.deepEqual(
          results,
          pairs.map((p) => ({ outcome: 'imported', kcv: p.key.kcv })),
        );
        const listed = keytoolEntries(JAVA_TYPE[type], file, PASSWORD);
        const probed = runProbe(classpath, JAVA_TYPE[type], file, PASSWORD);
        for (const p of pairs) {
          const alias = `${p.key.name}.v1`;
          const entry = listed.get(alias);
          assert.equal(entry?.type, 'PrivateKeyEntry', `keytool lists ${alias} as a private key`);
          assert.equal(entry?.chainLength, 3, `keytool reads the chain of ${alias}`);
          assert.deepEqual(entry?.fingerprints, p.key.certificateChain!.map(sha256Fingerprint), `the chain of ${alias} is the hub's, leaf first`);
          const got = probed.get(alias);
          assert.equal(got?.kind, 'privateKey');
          assert.equal(got?.algorithm, p.key.algorithm === 'RSA-2048' ? 'RSA' : 'EC');
          assert.equal(got?.chainLength, 3);
          assert.equal(got?.kcv, p.key.kcv, `Java's KCV of ${alias} (SHA-256 of the leaf's SPKI) is the hub's`);
          // The private key Java loaded signs for the package's public key: it is the hub's key, not just its certificate.
          assert.ok(verify('sha256', PROBE_MESSAGE, { key: Buffer.from(p.key.publicKey!, 'base64'), format: 'der', type: 'spki' }, got.signature!), `${alias}: Java's signature verifies`);
          if (p.key.algorithm === 'RSA-2048') assert.equal(got.keyKcv, p.key.kcv, 'the RSA public key Java derives from the private key has the hub KCV');
        }
        if (type === 'pkcs12') {
          // OpenSSL reads the chains too: both leaves and the two CA certificates (issuers are stored once, shared).
          const certs = opensslPkcs12Certificates(file, PASSWORD).map((d) => d.toString('base64'));
          const expected = new Set(pairs.flatMap((p) => p.key.certificateChain!));
          assert.equal(expected.size, 4);
          assert.deepEqual(new Set(certs), expected);
        }
        const pkcs8 = wiped.filter((b) => b.length > 100);
        assert.ok(pkcs8.length >= 2, 'the PKCS#8 read out of the token for each pair was handed to custody');
        assert.ok(
          wiped.every((b) => b.every((x) => x === 0)),
          'every buffer that held clear key material is zero-filled',
        );
        assert.deepEqual((await ks.inventory()).map((i) => [i.label, i.algorithm]).sort(), pairs.map((p) => [`${p.key.name}.v1`, 'PRIVATE_KEY']).sort());
        // Again: already there; destroy removes the private key and its leaf certificate, the other pair keeps its chain.
        assert.deepEqual(await ks.import(pairs[0]), { outcome: 'already_present', kcv: pairs[0].key.kcv });
        assert.equal(await ks.destroy({ keyId: pairs[0].key.id, version: 1 }), true);
        const after = keytoolEntries(JAVA_TYPE[type], file, PASSWORD);
        assert.deepEqual([...after.keys()], [`${pairs[1].key.name}.v1`]);
        assert.equal(after.get(`${pairs[1].key.name}.v1`)?.chainLength, 3);
        if (type === 'pkcs12') {
          const left = opensslPkcs12Certificates(file, PASSWORD).map((d) => d.toString('base64'));
          assert.ok(!left.includes(pairs[0].key.certificateChain![0]), "the destroyed key's leaf certificate is gone");
          assert.deepEqual(new Set(left), new Set(pairs[1].key.certificateChain));
        }
      });
    }

    it('a pair without a chain is CERTIFICATE_REQUIRED, a chain for another key CERTIFICATE_KEY_MISMATCH, a broken chain CERTIFICATE_CHAIN_INVALID: nothing is unwrapped or written', async () => {
      const name = 'pairs-refused';
      await installTransitKek(name);
      const file = path.join(dir, 'refused.p12');
      const ks = target(name, 'pkcs12', file);
      await ks.import(await packageFor(name, 'AES-256', 'seed'));
      const before = fs.readFileSync(file);
      const sessionKeys = async (): Promise<number> => (await site.findKeys({ class: 'private', token: false })).length;
      const sessions = await sessionKeys();
      let unwraps = 0;
      const unwrapKwpAs = site.unwrapKwpAs;
      site.unwrapKwpAs = function (this: Pkcs11Hsm, ...args: Parameters<Pkcs11Hsm['unwrapKwpAs']>) {
        unwraps++;
        return unwrapKwpAs.apply(this, args);
      };
      try {
        await assert.rejects(
          ks.import(await pairFor(name, 'RSA-2048', 'no-chain', false)),
          (e: unknown) => code('CERTIFICATE_REQUIRED')(e) && /keyhub key certificate no-chain/.test((e as Error).message),
        );
        const a = await pairFor(name, 'EC-P256', 'pair-a');
        const b = await pairFor(name, 'EC-P256', 'pair-b');
        await assert.rejects(ks.import({ ...a, key: { ...a.key, certificateChain: b.key.certificateChain } }), code('CERTIFICATE_KEY_MISMATCH'));
        const [leaf, issuing] = a.key.certificateChain!;
        // The leaf followed by the root: the leaf is not signed by it.
        await assert.rejects(ks.import({ ...a, key: { ...a.key, certificateChain: [leaf, a.key.certificateChain![2]] } }), code('CERTIFICATE_CHAIN_INVALID'));
        await assert.rejects(ks.import({ ...a, key: { ...a.key, certificateChain: [leaf, Buffer.from('not a certificate').toString('base64'), issuing] } }), code('CERTIFICATE_CHAIN_INVALID'));
        assert.equal(unwraps, 0, 'no refused package was unwrapped');
        // The same pair with its own chain goes in: the refusals left nothing behind.
        assert.equal((await ks.import(a)).outcome, 'imported');
        assert.equal(unwraps, 1);
      } finally {
        site.unwrapKwpAs = unwrapKwpAs;
      }
      assert.equal(await sessionKeys(), sessions, 'no private key is left in the token');
      assert.notDeepEqual(fs.readFileSync(file), before);
      assert.deepEqual([...keytoolList('PKCS12', file, PASSWORD).keys()].sort(), ['pair-a.v1', 'seed.v1']);
    });
  });
});
