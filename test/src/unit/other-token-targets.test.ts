import { strict as assert } from 'node:assert';
import { fingerprintsEqual, messageSchema, MESSAGE_TYPES, targetTransportFingerprint } from '@keyhub/protocol';
import { hsmOf, listenerConfigSchema } from '@keyhub/listener/dist/config';

/** Issue 12: the configuration of targets in other tokens, and the fingerprint an operator compares. */
describe('other-token targets: configuration and transport fingerprint', () => {
  const base = { id: 'site-x', nats: { servers: ['nats://127.0.0.1:4222'] }, hubFingerprint: 'ab'.repeat(32), hsm: { module: '/m.so', tokenLabel: 'own', pinEnv: 'P' } };
  const other = (name: string, tokenLabel: string, extra: Record<string, unknown> = {}) => ({ name, kind: 'pkcs11', hsm: { module: '/m.so', tokenLabel, pinFile: '/p', ...extra } });

  it('takes targets with their own module, token, PIN source and profile; defaults the profile', () => {
    const c = listenerConfigSchema.parse({ ...base, targets: [{ name: 'hsm', kind: 'pkcs11' }, other('a', 'ta'), other('b', 'tb', { kwpMechanism: 0x210b })] });
    assert.equal(hsmOf(c.targets[1])?.kwpMechanism, 0x210a);
    assert.equal(hsmOf(c.targets[2])?.kwpMechanism, 0x210b);
    assert.equal(c.targets[1].oaepHash, 'sha1');
    assert.equal(c.targets[1].transportKeyBits, 3072);
  });

  it('refuses duplicate names, two targets on one token, no own-token target, a PIN in the file, unknown fields', () => {
    const bad = [
      [{ name: 'hsm', kind: 'pkcs11' }, other('hsm', 'ta')],
      [{ name: 'hsm', kind: 'pkcs11' }, other('a', 'ta'), other('b', 'ta')],
      [other('a', 'ta')],
      [
        { name: 'hsm', kind: 'pkcs11' },
        { ...other('a', 'ta'), hsm: { module: '/m.so', tokenLabel: 'ta', pin: '1234' } },
      ],
      [
        { name: 'hsm', kind: 'pkcs11' },
        { ...other('a', 'ta'), oaepHash: 'md5' },
      ],
    ];
    for (const targets of bad) assert.equal(listenerConfigSchema.safeParse({ ...base, targets }).success, false, JSON.stringify(targets));
  });

  it('the transport fingerprint binds listener, target and key', () => {
    const fp = targetTransportFingerprint('site-x', 'a', 'AAAA');
    assert.match(fp, /^[0-9a-f]{4}(-[0-9a-f]{4}){15}$/);
    assert.ok(fingerprintsEqual(fp, fp.toUpperCase().replace(/-/g, ' ')));
    for (const other of [targetTransportFingerprint('site-y', 'a', 'AAAA'), targetTransportFingerprint('site-x', 'b', 'AAAA'), targetTransportFingerprint('site-x', 'a', 'AAAB')]) {
      assert.equal(fingerprintsEqual(fp, other), false);
    }
  });

  it('the three messages are strict members of the protocol union', () => {
    const confirm = {
      type: MESSAGE_TYPES.targetKekConfirm,
      id: '6f1c1d1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f',
      listenerId: 'site-x',
      issuedAt: '2026-11-26T12:00:00.000Z',
      target: 'a',
      kekId: '6f1c1d1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f',
      kekVersion: 1,
      kcv: 'abcdef',
    };
    assert.ok(messageSchema.safeParse(confirm).success);
    assert.equal(messageSchema.safeParse({ ...confirm, extra: 1 }).success, false);
    assert.equal(messageSchema.safeParse({ ...confirm, kcv: 'ABCDEF' }).success, false);
  });
});
