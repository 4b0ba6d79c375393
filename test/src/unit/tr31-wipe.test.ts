import { strict as assert } from 'node:assert';
import { Tr31Error, Tr31Secrets, unwrapTr31, wipeBuffers, wrapTr31 } from '@keyhub/protocol';
import { TR31_VECTORS } from '../fixtures/tr31/vectors';

/** Keeps a copy of every held buffer's content at wipe time, and the buffers themselves to look at afterwards. */
class RecordingSecrets extends Tr31Secrets {
  readonly buffers: Buffer[] = [];
  readonly beforeWipe: string[] = [];
  wipes = 0;
  override hold<T extends Buffer>(buffer: T): T {
    this.buffers.push(buffer);
    return super.hold(buffer);
  }
  override wipe(): void {
    this.wipes += 1;
    for (const b of this.buffers) this.beforeWipe.push(b.toString('hex'));
    super.wipe();
  }
  allZero(): boolean {
    return this.buffers.every((b) => b.every((x) => x === 0));
  }
}

const A74 = TR31_VECTORS[0];
const kbpk = Buffer.from(A74.kbpk, 'hex');
/**
 * What the A.7.4 block is made of, as published alongside the vector: the
 * clear key data (length, key, padding) and the derived KBAK.
 */
const CLEAR_KEY_DATA = '00803f419e1cb7079442aa37474c2efbf8b81c2965473ce206bb855b01533782';
const KBAK = '4ef24317696213840451890756757e573e0673483888f9b7f9b7517827f95022';

describe('TR-31 key blocks: clear key bytes and derived keys are wiped', () => {
  it('wrap holds the clear key data and the derived keys, and every held buffer is zero when it returns', () => {
    const secrets = new RecordingSecrets();
    const key = Buffer.from(A74.key, 'hex');
    const header = { version: 'D' as const, keyUsage: 'P0', algorithm: 'A' as const, modeOfUse: 'E' as const, exportability: 'E' as const };
    assert.equal(wrapTr31(kbpk, header, key, { padding: Buffer.from(A74.padding!, 'hex'), secrets }), A74.block);
    assert.equal(secrets.wipes, 1);
    assert.ok(secrets.beforeWipe.includes(CLEAR_KEY_DATA), 'the clear key data went through the secrets');
    assert.ok(secrets.beforeWipe.includes(KBAK), 'the KBAK went through the secrets');
    assert.ok(
      secrets.beforeWipe.some((h) => h.includes(A74.key.toLowerCase())),
      'the key copy was held',
    );
    assert.ok(secrets.allZero(), 'a held buffer still has bytes in it');
    assert.equal(key.toString('hex').toUpperCase(), A74.key, "the caller's key is the caller's to wipe");
  });

  it('unwrap wipes everything but the key it returns, which the caller wipes', () => {
    const secrets = new RecordingSecrets();
    const { key } = unwrapTr31(kbpk, A74.block, { secrets });
    assert.ok(secrets.beforeWipe.includes(CLEAR_KEY_DATA));
    assert.ok(secrets.beforeWipe.includes(KBAK));
    assert.ok(secrets.allZero());
    assert.ok(!secrets.buffers.some((b) => b.buffer === key.buffer && b.byteOffset === key.byteOffset), 'the returned key is not a held buffer');
    wipeBuffers(key);
    assert.ok(key.every((x) => x === 0));
  });

  it('a refused block (MAC) still wipes what it derived and decrypted', () => {
    const secrets = new RecordingSecrets();
    const tampered = A74.block.slice(0, -1) + (A74.block.endsWith('4') ? '5' : '4');
    assert.throws(
      () => unwrapTr31(kbpk, tampered, { secrets }),
      (e: unknown) => e instanceof Tr31Error && e.code === 'TR31_MAC_INVALID',
    );
    assert.equal(secrets.wipes, 1);
    assert.ok(secrets.beforeWipe.includes(KBAK));
    assert.ok(secrets.buffers.length > 5);
    assert.ok(secrets.allZero());
  });
});
