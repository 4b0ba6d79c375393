/**
 * Failure paths of the listener's keystore library, each a stable code and
 * the file on disk left exactly as it was: a wrong password (PKCS#12 MAC,
 * JCEKS keyed hash), a directory that cannot be written, a corrupt file,
 * passwords Java 17 would refuse, aliases Java would change, key lengths
 * Java could not load. Clear key bytes are wiped even when the write fails.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KeyhubError } from '@keyhub/shared';
import type { ErrorCode } from '@keyhub/protocol';
import { KeystoreFile, type KeystoreEntryInput, type KeystoreType } from '@keyhub/listener/dist/targets/keystore';

const PASSWORD = 'failure-test-pw';
const OPTIONS = { password: PASSWORD, pkcs12KeyIterations: 1000, pkcs12MacIterations: 1000, jceksIterations: 1000 };
const aes = (alias: string): KeystoreEntryInput & { key: Buffer } => ({ kind: 'secretKey', alias, algorithm: 'AES', key: randomBytes(32) });

async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<void> {
  await assert.rejects(
    async () => (typeof promise === 'function' ? promise() : promise),
    (err: unknown) => KeyhubError.is(err, code) || assert.fail(`expected ${code}, got ${String((err as { code?: unknown }).code ?? err)}`),
  );
}

/** Root ignores directory permissions, so as root the directory is made immutable (ext4 chattr) instead. */
function makeReadOnly(dir: string, readOnly: boolean): void {
  if (process.getuid?.() === 0) execFileSync('chattr', [readOnly ? '+i' : '-i', dir]);
  else fs.chmodSync(dir, readOnly ? 0o500 : 0o700);
}

describe('Java keystores: failures have codes and leave the file as it was', function () {
  this.timeout(30_000);
  let dir: string;
  const files: Record<KeystoreType, string> = { pkcs12: '', jceks: '' };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-keystore-fail-'));
    for (const type of ['pkcs12', 'jceks'] as const) {
      files[type] = path.join(dir, `site.${type}`);
      const ks = await KeystoreFile.open(files[type], { type, ...OPTIONS });
      ks.put([aes('existing.v1')]);
      await ks.commit();
    }
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const type of ['pkcs12', 'jceks'] as const) {
    it(`${type}: a wrong password is KEYSTORE_WRONG_PASSWORD and nothing is rewritten`, async () => {
      const before = fs.readFileSync(files[type]);
      await rejectsWith(KeystoreFile.open(files[type], { type, ...OPTIONS, password: 'not-the-password' }), 'KEYSTORE_WRONG_PASSWORD');
      assert.deepEqual(fs.readFileSync(files[type]), before);
    });

    it(`${type}: a directory that cannot be written is KEYSTORE_NOT_WRITABLE; the key is wiped, the file unchanged, a retry works`, async () => {
      const sub = fs.mkdtempSync(path.join(dir, `ro-${type}-`));
      const file = path.join(sub, `ro.${type}`);
      const seed = await KeystoreFile.open(file, { type, ...OPTIONS });
      seed.put([aes('seed.v1')]);
      await seed.commit();
      const before = fs.readFileSync(file);
      const ks = await KeystoreFile.open(file, { type, ...OPTIONS });
      const entry = aes('blocked.v1');
      ks.put([entry]);
      makeReadOnly(sub, true);
      try {
        await rejectsWith(ks.commit(), 'KEYSTORE_NOT_WRITABLE');
      } finally {
        makeReadOnly(sub, false);
      }
      assert.ok(
        entry.key.every((b) => b === 0),
        'clear key wiped after the failed write',
      );
      assert.deepEqual(fs.readFileSync(file), before);
      assert.deepEqual(fs.readdirSync(sub).sort(), [`ro.${type}`], 'no temp file or backup left by the failed write');
      ks.put([aes('blocked.v1')]);
      assert.equal((await ks.commit()).written, true, 'the same writer succeeds once the directory is writable again');
    });

    it(`${type}: a file that is not a keystore is KEYSTORE_CORRUPT and stays as it is`, async () => {
      const file = path.join(dir, `garbage.${type}`);
      const garbage = randomBytes(300);
      garbage[0] = 0x42; // neither a DER SEQUENCE nor the JCEKS magic
      fs.writeFileSync(file, garbage);
      await rejectsWith(KeystoreFile.open(file, { type, ...OPTIONS }), 'KEYSTORE_CORRUPT');
      assert.deepEqual(fs.readFileSync(file), garbage);
      const truncated = path.join(dir, `truncated.${type}`);
      fs.writeFileSync(truncated, fs.readFileSync(files[type]).subarray(0, 100));
      await assert.rejects(KeystoreFile.open(truncated, { type, ...OPTIONS }), (err: unknown) => KeyhubError.is(err) && ['KEYSTORE_CORRUPT', 'KEYSTORE_WRONG_PASSWORD'].includes(err.code));
    });
  }

  it('pkcs12: a truncated PFX is KEYSTORE_CORRUPT; an altered byte fails the MAC as Java reports it (wrong password or tampered)', async () => {
    const bytes = fs.readFileSync(files.pkcs12);
    const truncated = path.join(dir, 'cut.p12');
    fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 10));
    await rejectsWith(KeystoreFile.open(truncated, { type: 'pkcs12', ...OPTIONS }), 'KEYSTORE_CORRUPT');
    const altered = Buffer.from(bytes);
    altered[Math.floor(bytes.length / 2)] ^= 0x01; // inside the MAC-protected content
    const alteredFile = path.join(dir, 'altered.p12');
    fs.writeFileSync(alteredFile, altered);
    await rejectsWith(KeystoreFile.open(alteredFile, { type: 'pkcs12', ...OPTIONS }), 'KEYSTORE_WRONG_PASSWORD');
  });

  it('jceks: a well-signed file whose sealed key is not a Java object is KEYSTORE_CORRUPT', async () => {
    const alias = Buffer.from('x', 'ascii');
    const body = Buffer.concat([Buffer.from('cececece0000000200000001' + '00000003' + '0001', 'hex'), alias, Buffer.alloc(8), Buffer.from('aced00057372ffff', 'hex')]);
    const pw = Buffer.from(PASSWORD, 'utf16le').swap16(); // UTF-16BE, as JceKeyStore digests it
    const digest = createHash('sha1').update(pw).update('Mighty Aphrodite').update(body).digest();
    const file = path.join(dir, 'bad-object.jceks');
    fs.writeFileSync(file, Buffer.concat([body, digest]));
    await rejectsWith(KeystoreFile.open(file, { type: 'jceks', ...OPTIONS }), 'KEYSTORE_CORRUPT');
  });

  it('passwords Java 17 refuses, aliases Java would change and unloadable key lengths are refused before any write', async () => {
    for (const password of ['', 'pässwort', 'tab\tpw', 'naïve']) {
      await rejectsWith(KeystoreFile.open(path.join(dir, 'never.p12'), { type: 'pkcs12', password }), 'KEYSTORE_PASSWORD_INVALID');
    }
    const ks = await KeystoreFile.open(path.join(dir, 'never.jceks'), { type: 'jceks', ...OPTIONS });
    await rejectsWith(() => ks.put([aes('Upper.V1')]), 'KEYSTORE_ALIAS_INVALID');
    const short = randomBytes(20);
    await rejectsWith(() => ks.put([{ kind: 'secretKey', alias: 'short.v1', algorithm: 'AES', key: short }]), 'KEY_LENGTH_INVALID');
    await rejectsWith(() => ks.put([{ kind: 'secretKey', alias: 'hmac.v1', algorithm: 'HmacSHA512', key: randomBytes(32) }]), 'KEY_LENGTH_INVALID');
    ks.discard();
    assert.ok(
      short.every((b) => b === 0),
      'a refused key is wiped too',
    );
    assert.equal(fs.existsSync(path.join(dir, 'never.jceks')), false);
    assert.equal(fs.existsSync(path.join(dir, 'never.p12')), false);
  });
});
