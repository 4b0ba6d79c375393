import { strict as assert } from 'node:assert';
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeyhubError, readSecret } from '@keyhub/shared';
import { secureHome } from '@keyhub/listener/dist/config';
import { HeartbeatSequence } from '@keyhub/listener/dist/state/heartbeat-sequence';
import { makeTempDir, type TempDir } from '../env';

const mode = (p: string) => statSync(p).mode & 0o777;

describe('secrets hygiene: PIN files, the listener home', () => {
  let dir: TempDir;
  beforeEach(async () => {
    dir = await makeTempDir('hygiene');
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('a PIN file readable by group or others is refused with SECRET_FILE_PERMISSIONS; an owner-only one is read', () => {
    const file = join(dir.path, 'pin');
    writeFileSync(file, '1234\n', { mode: 0o600 });
    assert.equal(readSecret({ file }, 'PIN'), '1234');
    chmodSync(file, 0o400);
    assert.equal(readSecret({ file }, 'PIN'), '1234');
    for (const bad of [0o644, 0o640, 0o604, 0o620]) {
      chmodSync(file, bad);
      assert.throws(
        () => readSecret({ file }, 'PIN'),
        (e: unknown) => KeyhubError.is(e, 'SECRET_FILE_PERMISSIONS') && e.message.includes(bad.toString(8)) && !e.message.includes('1234'),
        `mode ${bad.toString(8)}`,
      );
    }
    // The environment variable wins and is not subject to file modes.
    process.env.KEYHUB_TEST_HYGIENE_PIN = '9999';
    try {
      assert.equal(readSecret({ env: 'KEYHUB_TEST_HYGIENE_PIN', file }, 'PIN'), '9999');
    } finally {
      delete process.env.KEYHUB_TEST_HYGIENE_PIN;
    }
    assert.throws(
      () => readSecret({ file: dir.path }, 'PIN'),
      (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID'),
    );
  });

  it('the listener home is created 0700 whatever the umask allows', () => {
    const home = join(dir.path, 'a', 'listener');
    const old = process.umask(0o022);
    try {
      secureHome(home);
    } finally {
      process.umask(old);
    }
    assert.equal(mode(home), 0o700);
  });

  it('a 0755 home and 0644 files in it are tightened (fixed, not refused), with a warning naming the mode found', () => {
    const home = join(dir.path, 'open');
    mkdirSync(home, { mode: 0o755 });
    chmodSync(home, 0o755);
    writeFileSync(join(home, 'journal.jsonl'), '', { mode: 0o644 });
    chmodSync(join(home, 'journal.jsonl'), 0o644);
    writeFileSync(join(home, 'listener.json'), '{}', { mode: 0o600 });
    const warnings: Array<Record<string, unknown>> = [];
    secureHome(home, { warn: ((o: Record<string, unknown>) => warnings.push(o)) as never });
    assert.equal(mode(home), 0o700);
    assert.equal(mode(join(home, 'journal.jsonl')), 0o600);
    assert.equal(mode(join(home, 'listener.json')), 0o600);
    assert.deepEqual(
      warnings.map((w) => [w.found, w.now]),
      [
        ['0755', '0700'],
        ['0644', '0600'],
      ],
    );
  });

  it('a home owned by another user is refused', function () {
    if (process.getuid?.() !== 0) this.skip();
    const home = join(dir.path, 'foreign');
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, 4242, 4242);
    assert.throws(
      () => secureHome(home),
      (e: unknown) => KeyhubError.is(e, 'SECRET_FILE_PERMISSIONS'),
    );
  });

  it('heartbeat sequences only grow, across restarts and a clock stepped back', () => {
    const seq = HeartbeatSequence.open(dir.path);
    const a = seq.next(1_000_000);
    const b = seq.next(1_000_000);
    const c = seq.next(500);
    assert.ok(a < b && b < c, `${a} ${b} ${c}`);
    assert.equal(mode(join(dir.path, 'heartbeat.seq')), 0o600);
    const again = HeartbeatSequence.open(dir.path);
    assert.ok(again.next(10) > c, 'a restart with the clock behind does not reuse a sequence');
    assert.ok(again.next(5_000_000) === 5_000_000, 'a sequence is at least the clock in ms');
  });
});
