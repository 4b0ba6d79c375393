/**
 * Keystores written by the listener's keystore library, checked by Java 17
 * itself: keytool -list -v names every alias with its entry type, and a Java
 * program compiled here with javac loads every secret key and private key
 * through KeyStore.getKey and prints what it got. Secret keys must come back
 * with their algorithm and a KCV equal to one computed from the input bytes
 * outside our code (OpenSSL's CMAC for AES); private keys must sign a message
 * that Node verifies with the public key that went in, with their chain.
 * Also: keystores made by keytool itself are extended by the library and
 * stay loadable, and the stated default iteration counts are what is written.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, verify } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spkiKcv } from '@keyhub/shared';
import { KEYSTORE_DEFAULTS, KeystoreFile, type KeystoreType, type SecretKeyAlgorithm } from '@keyhub/listener/dist/targets/keystore';
import { compileProbe, keytoolList, PROBE_MESSAGE, referenceKcv, runProbe, TestCa, type TestKeyPair } from './keystore-support';

const PASSWORD = 'Keyhub-test 1!';
const LOW = { pkcs12KeyIterations: 1000, pkcs12MacIterations: 1000, jceksIterations: 1000 };
const JAVA_TYPE = { pkcs12: 'PKCS12', jceks: 'JCEKS' } as const;
const SECRETS: ReadonlyArray<{ alias: string; algorithm: SecretKeyAlgorithm; length: number }> = [
  { alias: 'payments-zek.v1', algorithm: 'AES', length: 32 },
  { alias: 'aes128.v7', algorithm: 'AES', length: 16 },
  { alias: 'legacy-tdes.v2', algorithm: 'DESede', length: 24 },
  { alias: 'api-mac.v3', algorithm: 'HmacSHA256', length: 32 },
  { alias: 'api-mac512.v1', algorithm: 'HmacSHA512', length: 64 },
];
const KEYTOOL_KIND = { secretKey: 'SecretKeyEntry', privateKey: 'PrivateKeyEntry' } as const;

describe('Java keystores: what the writer makes, Java 17 loads', function () {
  this.timeout(120_000);
  let dir: string;
  let classpath: string;
  let ca: TestCa;
  let rsa: TestKeyPair;
  let ec: TestKeyPair;
  const secrets = new Map<string, { algorithm: string; kcv: string }>();

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-keystore-java-'));
    classpath = compileProbe(dir);
    ca = new TestCa(dir);
    rsa = ca.rsaKeyPair('site-tls.v1');
    ec = ca.ecKeyPair('signer-ec.v4');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function writeAll(type: KeystoreType, file: string): Promise<void> {
    const ks = await KeystoreFile.open(file, { type, password: PASSWORD, ...LOW });
    const entries = SECRETS.map(({ alias, algorithm, length }) => {
      const key = randomBytes(length);
      secrets.set(`${type}:${alias}`, { algorithm, kcv: referenceKcv(algorithm, key, dir) });
      return { kind: 'secretKey' as const, alias, algorithm, key };
    });
    // Copies: the writer wipes what it is given.
    const pairs = [
      { kind: 'privateKey' as const, alias: 'site-tls.v1', pkcs8: Buffer.from(rsa.pkcs8), chain: rsa.chain },
      { kind: 'privateKey' as const, alias: 'signer-ec.v4', pkcs8: Buffer.from(ec.pkcs8), chain: ec.chain },
    ];
    ks.put([...entries, ...pairs]);
    const result = await ks.commit();
    assert.equal(result.written, true);
    assert.equal(result.entries, SECRETS.length + 2);
  }

  for (const type of ['pkcs12', 'jceks'] as const) {
    describe(type, () => {
      let file: string;
      let probed: ReturnType<typeof runProbe>;
      before(async () => {
        file = path.join(dir, `site.${type}`);
        await writeAll(type, file);
        probed = runProbe(classpath, JAVA_TYPE[type], file, PASSWORD);
      });

      it('keytool -list -v names every alias with its entry type', () => {
        const listed = keytoolList(JAVA_TYPE[type], file, PASSWORD);
        const expected = new Map<string, string>([
          ...SECRETS.map((s) => [s.alias, KEYTOOL_KIND.secretKey] as [string, string]),
          ['site-tls.v1', KEYTOOL_KIND.privateKey],
          ['signer-ec.v4', KEYTOOL_KIND.privateKey],
        ]);
        assert.deepEqual(new Map([...listed].sort()), new Map([...expected].sort()));
      });

      it('Java loads every secret key with its algorithm and the KCV of the input bytes', () => {
        for (const { alias } of SECRETS) {
          const expected = secrets.get(`${type}:${alias}`);
          const got = probed.get(alias);
          assert.ok(got && expected, `Java did not return ${alias}`);
          assert.equal(got.kind, 'secretKey');
          assert.equal(got.algorithm, expected.algorithm, alias);
          assert.equal(got.kcv, expected.kcv, `KCV of ${alias}`);
        }
      });

      it('Java loads the RSA and EC private keys with their chains; Node verifies their signatures', () => {
        for (const [alias, pair, algorithm] of [
          ['site-tls.v1', rsa, 'RSA'],
          ['signer-ec.v4', ec, 'EC'],
        ] as const) {
          const got = probed.get(alias);
          assert.ok(got?.signature, `Java did not return ${alias}`);
          assert.equal(got.algorithm, algorithm);
          assert.equal(got.chainLength, 2, `${alias}: leaf and CA`);
          assert.equal(got.kcv, spkiKcv(pair.publicKey.export({ type: 'spki', format: 'der' })), `${alias}: leaf certificate holds the key's public key`);
          assert.ok(verify('sha256', PROBE_MESSAGE, pair.publicKey, got.signature), `${alias}: signature by the loaded key verifies`);
        }
      });
    });
  }

  for (const type of ['pkcs12', 'jceks'] as const) {
    it(`${type}: a keystore keytool made is extended by the writer, and Java still loads both`, async () => {
      const file = path.join(dir, `keytool-made.${type}`);
      const javaOpts = ['-J-Djdk.jceks.iterationCount=10000', '-storetype', JAVA_TYPE[type], '-keystore', file, '-storepass', PASSWORD];
      execFileSync('keytool', ['-genseckey', '-alias', 'From-Keytool', '-keyalg', 'AES', '-keysize', '256', ...javaOpts], { stdio: 'pipe' });
      execFileSync('keytool', ['-genkeypair', '-alias', 'keytool-pair', '-keyalg', 'EC', '-dname', 'CN=keytool', ...javaOpts], { stdio: 'pipe' });
      const ks = await KeystoreFile.open(file, { type, password: PASSWORD, ...LOW });
      assert.deepEqual(
        ks
          .list()
          .map((e) => `${e.alias}:${e.kind}`)
          .sort(),
        ['from-keytool:secretKey', 'keytool-pair:privateKey'],
      );
      const key = randomBytes(32);
      const kcv = referenceKcv('AES', key, dir);
      ks.put([{ kind: 'secretKey', alias: 'added.v1', algorithm: 'AES', key }]);
      await ks.commit();
      const probed = runProbe(classpath, JAVA_TYPE[type], file, PASSWORD);
      assert.deepEqual([...probed.keys()].sort(), ['added.v1', 'from-keytool', 'keytool-pair']);
      assert.equal(probed.get('added.v1')?.kcv, kcv);
      assert.equal(probed.get('from-keytool')?.algorithm, 'AES');
      assert.equal(probed.get('keytool-pair')?.algorithm, 'EC');
    });
  }

  it('the defaults are written as stated (PKCS#12 PBES2 and MAC 10,000; JCEKS 10,000) and Java loads them', async () => {
    for (const type of ['pkcs12', 'jceks'] as const) {
      const file = path.join(dir, `defaults.${type}`);
      const ks = await KeystoreFile.open(file, { type, password: PASSWORD });
      const key = randomBytes(32);
      const kcv = referenceKcv('AES', key, dir);
      ks.put([{ kind: 'secretKey', alias: 'default.v1', algorithm: 'AES', key }]);
      await ks.commit();
      assert.equal(runProbe(classpath, JAVA_TYPE[type], file, PASSWORD).get('default.v1')?.kcv, kcv);
      const hex = fs.readFileSync(file).toString('hex');
      if (type === 'pkcs12') {
        const run = spawnSync('openssl', ['pkcs12', '-info', '-noout', '-in', file, '-passin', `pass:${PASSWORD}`], { encoding: 'utf8' });
        const info = run.stdout + run.stderr; // OpenSSL prints the MAC line on stderr
        assert.match(info, new RegExp(`MAC: sha256, Iteration ${KEYSTORE_DEFAULTS.pkcs12MacIterations}`));
        // PBKDF2-params: 20-byte salt, then the iteration count (0x2710), key length 32, hmacWithSHA256.
        assert.match(hex, /0414[0-9a-f]{40}02022710020120300c06082a864886f70d0209/);
      } else {
        // PBEParameter of the sealed key: 8-byte salt, then the iteration count.
        assert.match(hex, /300e0408[0-9a-f]{16}02022710/);
      }
    }
  });
});
