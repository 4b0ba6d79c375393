/**
 * Rewrites of a keystore by the listener's keystore library: entries already
 * in the file are re-emitted byte for byte (never re-protected), removal
 * drops an entry with its certificates, a backlog is one rewrite, the
 * previous file is kept as `.bak`, files are 0600, and every buffer that
 * held clear key material is zero-filled once the write is over.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KeystoreFile, type KeystoreEntryInput, type KeystoreType } from '@keyhub/listener/dist/targets/keystore';
import { parsePkcs12 } from '@keyhub/listener/dist/targets/keystore/pkcs12-file';
import { parseJceks } from '@keyhub/listener/dist/targets/keystore/jceks-file';
import { keytoolList, TestCa, type TestKeyPair } from './keystore-support';

const PASSWORD = 'rewrite-test-pw';
const OPTIONS = { password: PASSWORD, pkcs12KeyIterations: 1000, pkcs12MacIterations: 1000, jceksIterations: 1000 };
const JAVA_TYPE = { pkcs12: 'PKCS12', jceks: 'JCEKS' } as const;

/** Each entry's exact bytes as the file holds them: PKCS#12 bags (key and certificates), JCEKS entries. */
function entryBytes(type: KeystoreType, file: string): Buffer[] {
  const bytes = fs.readFileSync(file);
  if (type === 'jceks') return parseJceks(bytes, PASSWORD).map((e) => e.der);
  return parsePkcs12(bytes, PASSWORD).flatMap((c) => (c.kind === 'plain' ? c.bags.map((b) => b.der) : []));
}

const aes = (alias: string): KeystoreEntryInput => ({ kind: 'secretKey', alias, algorithm: 'AES', key: randomBytes(32) });
const mode = (file: string): number => fs.statSync(file).mode & 0o777;

describe('Java keystores: rewrites keep entries as they are protected', function () {
  this.timeout(60_000);
  let dir: string;
  let pair: TestKeyPair;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-keystore-rewrite-'));
    pair = new TestCa(dir).rsaKeyPair('tls.v1');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const type of ['pkcs12', 'jceks'] as const) {
    it(`${type}: add keeps old entries byte-identical, remove drops one, .bak is the previous file, 0600`, async () => {
      const file = path.join(dir, `rewrite.${type}`);
      const first = await KeystoreFile.open(file, { type, ...OPTIONS });
      first.put([aes('old-a.v1'), { kind: 'privateKey', alias: 'tls.v1', pkcs8: Buffer.from(pair.pkcs8), chain: pair.chain }]);
      await first.commit();
      const gen1 = fs.readFileSync(file);
      const gen1Entries = entryBytes(type, file);
      assert.equal(mode(file), 0o600);
      assert.equal(fs.existsSync(`${file}.bak`), false, 'a new keystore has no previous generation');

      const second = await KeystoreFile.open(file, { type, ...OPTIONS });
      second.put([aes('new-c.v1')]);
      await second.commit();
      const gen2 = fs.readFileSync(file);
      for (const der of gen1Entries) assert.ok(gen2.includes(der), 'an existing entry was re-encoded or re-protected');
      assert.ok(entryBytes(type, file).length > gen1Entries.length);
      assert.deepEqual(fs.readFileSync(`${file}.bak`), gen1, '.bak holds the previous generation');
      assert.equal(mode(file), 0o600);
      assert.equal(mode(`${file}.bak`), 0o600);

      const third = await KeystoreFile.open(file, { type, ...OPTIONS });
      third.remove(['old-a.v1']);
      assert.deepEqual(await third.commit(), { written: true, added: 0, removed: 1, entries: 2 });
      const gen3Entries = entryBytes(type, file);
      assert.deepEqual(fs.readFileSync(`${file}.bak`), gen2);
      const listed = keytoolList(JAVA_TYPE[type], file, PASSWORD);
      assert.deepEqual([...listed.keys()].sort(), ['new-c.v1', 'tls.v1']);
      assert.equal(listed.get('tls.v1'), 'PrivateKeyEntry');
      // Everything that stayed is still byte-identical to what the first write made.
      const keptFromGen1 = gen1Entries.filter((der) => gen3Entries.some((e) => e.equals(der)));
      assert.ok(keptFromGen1.length >= 1 && keptFromGen1.length < gen1Entries.length);
      assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 0, 'no temp file left behind');
    });

    it(`${type}: a backlog of 40 keys is one rewrite, and every clear buffer is wiped after it`, async () => {
      const file = path.join(dir, `backlog.${type}`);
      const seed = await KeystoreFile.open(file, { type, ...OPTIONS });
      seed.put([aes('seed.v1')]);
      await seed.commit();
      const before = fs.readFileSync(file);

      const wiped: Buffer[] = [];
      const ks = await KeystoreFile.open(file, { type, ...OPTIONS, onWiped: (bufs) => wiped.push(...bufs) });
      const backlog = Array.from({ length: 40 }, (_, i) => aes(`backlog-${i}.v1`));
      const rsaCopy = Buffer.from(pair.pkcs8);
      ks.put([...backlog, { kind: 'privateKey', alias: 'tls.v1', pkcs8: rsaCopy, chain: pair.chain }]);
      assert.equal(ks.list().length, 42);
      const result = await ks.commit();
      assert.deepEqual(result, { written: true, added: 41, removed: 0, entries: 42 });
      assert.deepEqual(fs.readFileSync(`${file}.bak`), before, 'one rewrite: the previous generation is the file before the backlog');
      assert.equal(keytoolList(JAVA_TYPE[type], file, PASSWORD).size, 42);

      for (const entry of backlog) assert.ok(entry.kind === 'secretKey' && entry.key.every((b) => b === 0), 'input key bytes are zero-filled');
      assert.ok(
        rsaCopy.every((b) => b === 0),
        'input PKCS#8 is zero-filled',
      );
      // Inputs plus the encodings and PBE keys derived from them: clearly more than the 41 inputs, all zero now.
      assert.ok(wiped.length >= 41 * 2, `only ${wiped.length} buffers wiped`);
      assert.ok(
        wiped.every((buf) => buf.every((b) => b === 0)),
        'a derived buffer was not zero-filled',
      );
    });
  }

  it('what is staged while a commit runs goes into the next commit, not lost or wiped unwritten', async () => {
    const file = path.join(dir, 'overlap.jceks');
    const ks = await KeystoreFile.open(file, { type: 'jceks', ...OPTIONS });
    ks.put([aes('first.v1')]);
    const first = ks.commit();
    const late = aes('late.v1');
    ks.put([late]);
    assert.equal((await first).added, 1);
    assert.ok(late.kind === 'secretKey' && late.key.some((b) => b !== 0), 'the later key is still staged, not wiped');
    assert.deepEqual(await ks.commit(), { written: true, added: 1, removed: 0, entries: 2 });
    assert.deepEqual([...keytoolList('JCEKS', file, PASSWORD).keys()].sort(), ['first.v1', 'late.v1']);
  });

  it('nothing staged, nothing written; a put then discard() wipes without writing', async () => {
    const file = path.join(dir, 'idle.p12');
    const ks = await KeystoreFile.open(file, { type: 'pkcs12', ...OPTIONS });
    assert.equal((await ks.commit()).written, false);
    const entry = aes('never.v1');
    ks.put([entry]);
    ks.discard();
    assert.ok(entry.kind === 'secretKey' && entry.key.every((b) => b === 0));
    assert.equal(fs.existsSync(file), false);
  });
});
