import { strict as assert } from 'node:assert';
import { randomBytes, randomUUID } from 'node:crypto';
import { keyPackageSchema, targetUpdateSchema, MESSAGE_TYPES } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { keyVersionMacData } from '@keyhub/hub/dist/crypto/row-mac';
import { assertKindAllowed, kindAllowed, packagePolicy, widens } from '@keyhub/hub/dist/domain/target-policy';
import { targetSettingsSummary } from '@keyhub/listener/dist/targets/target-keks';

/** Targets as configuration (issue 12): the pure rules of a key's target policy, its row-MAC binding and the wire fields. */
describe('target policy rules (hub/src/domain/target-policy.ts, row MAC, messages)', () => {
  const key = { id: randomUUID(), algorithm: 'AES-256', usages: ['encrypt', 'decrypt'], exportable: false, sensitive: false };
  const version = { id: randomUUID(), version: 1, length: 32, kcv: 'abcdef', wrapped: randomBytes(40) };

  it('the default is pkcs11 only: an HSM-only key reaches no keystore, cloud or key block', () => {
    for (const kind of ['keystore', 'aws-kms', 'azure-kv', 'gcp-kms', 'tr31']) assert.equal(kindAllowed({}, kind), false, kind);
    assert.equal(kindAllowed({}, 'pkcs11'), true);
    assert.equal(kindAllowed({ targetKinds: ['keystore'] }, 'pkcs11'), false);
    assert.throws(
      () => assertKindAllowed({ name: 'k' }, { listenerId: 'l', target: 'jks', kind: 'keystore' }),
      (e: unknown) => KeyhubError.is(e, 'TARGET_KIND_NOT_ALLOWED'),
    );
  });

  it('a widening is a kind added or clear import allowed; a narrowing or the same policy is not', () => {
    assert.equal(widens({}, { targetKinds: ['pkcs11', 'keystore'] }), true);
    assert.equal(widens({ targetKinds: ['pkcs11', 'keystore'] }, { targetKinds: ['keystore', 'aws-kms'] }), true);
    assert.equal(widens({ targetKinds: ['aws-kms'] }, { targetKinds: ['aws-kms'], allowClearImport: true }), true);
    assert.equal(widens({ targetKinds: ['pkcs11', 'keystore'] }, { targetKinds: ['pkcs11'] }), false);
    assert.equal(widens({ targetKinds: ['aws-kms'], allowClearImport: true }, { targetKinds: ['aws-kms'] }), false);
    assert.equal(widens({}, { targetKinds: ['pkcs11'] }), false);
  });

  it('the row MAC binds a non-default policy and leaves rows with the default encoded as before', () => {
    const plain = keyVersionMacData({ key, version });
    assert.deepEqual(keyVersionMacData({ key: { ...key, targetKinds: ['pkcs11'], allowClearImport: false }, version }), plain);
    const keystore = keyVersionMacData({ key: { ...key, targetKinds: ['pkcs11', 'keystore'] }, version });
    assert.notDeepEqual(keystore, plain);
    // Order does not matter; each change of kinds or of clear import does.
    assert.deepEqual(keyVersionMacData({ key: { ...key, targetKinds: ['keystore', 'pkcs11'] }, version }), keystore);
    assert.notDeepEqual(keyVersionMacData({ key: { ...key, targetKinds: ['pkcs11', 'keystore'], allowClearImport: true }, version }), keystore);
    assert.notDeepEqual(keyVersionMacData({ key: { ...key, targetKinds: ['keystore'] }, version }), keystore);
  });

  it('a package carries the policy only when it is not the default, and the schema takes it', () => {
    assert.deepEqual(packagePolicy({}), {});
    assert.deepEqual(packagePolicy({ targetKinds: ['pkcs11'] }), {});
    assert.deepEqual(packagePolicy({ targetKinds: ['pkcs11', 'aws-kms'], allowClearImport: true }), { targetKinds: ['aws-kms', 'pkcs11'], allowClearImport: true });
    const pkg = {
      type: MESSAGE_TYPES.keyPackage,
      id: randomUUID(),
      listenerId: 'site-a',
      target: 'kms',
      distributionId: randomUUID(),
      sequence: 1,
      issuedAt: new Date().toISOString(),
      expiresAt: new Date().toISOString(),
      key: { id: randomUUID(), name: 'k', version: 1, algorithm: 'AES-256', length: 32, usages: ['encrypt'], exportable: false, kcv: 'abcdef', ...packagePolicy({ targetKinds: ['aws-kms'] }) },
      wrapping: { kekId: randomUUID(), kekVersion: 1, mechanism: 'AES-KWP', blob: randomBytes(40).toString('base64') },
    };
    assert.ok(keyPackageSchema.safeParse(pkg).success);
    assert.equal(keyPackageSchema.safeParse({ ...pkg, key: { ...pkg.key, targetKinds: ['floppy'] } }).success, false);
    assert.equal(keyPackageSchema.safeParse({ ...pkg, key: { ...pkg.key, allowClearImport: false } }).success, false);
  });

  it('a target update summarizes non-secret settings only, and its schema bounds them', () => {
    const summary = targetSettingsSummary({
      name: 'jks',
      kind: 'keystore',
      path: '/var/lib/app/keys.p12',
      type: 'PKCS12',
      password: { env: 'KS_PASSWORD' },
      pbeIterations: 10000,
      credentials: { kind: 'static', accessKeyId: { file: '/etc/keyhub/ak' }, secretAccessKey: { env: 'SAK' } },
      hsm: { module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'tgt-a', pinEnv: 'PIN', pinFile: '/x' },
    });
    assert.deepEqual(summary, { path: '/var/lib/app/keys.p12', type: 'PKCS12', pbeIterations: '10000', 'hsm.module': '/usr/lib/softhsm/libsofthsm2.so', 'hsm.tokenLabel': 'tgt-a' });
    const base = { type: MESSAGE_TYPES.targetUpdate, id: randomUUID(), listenerId: 'site-a', issuedAt: new Date().toISOString(), op: 'add', target: 'jks', kind: 'keystore' };
    assert.ok(targetUpdateSchema.safeParse({ ...base, settings: summary }).success);
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`s${i}`, 'v']));
    assert.equal(targetUpdateSchema.safeParse({ ...base, settings: many }).success, false);
    assert.equal(targetUpdateSchema.safeParse({ ...base, settings: { 'bad key': 'v' } }).success, false);
    assert.equal(targetUpdateSchema.safeParse({ ...base, kind: 'tape', settings: {} }).success, false);
  });
});
