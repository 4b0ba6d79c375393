import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import { encodeEnvelope, MESSAGE_TYPES, packageSha256, publicKeyFingerprint, signingInput, type KeyPackage, type Message, type Receipt, type SignedEnvelope } from '@keyhub/protocol';
import { createLogger, KeyhubError } from '@keyhub/shared';
import { Inbox } from '@keyhub/listener/dist/inbox';
import type { ListenerKeys } from '@keyhub/listener/dist/listener-keys';
import { HubKeyStore } from '@keyhub/listener/dist/state/hub-key';
import { Journal } from '@keyhub/listener/dist/state/journal';
import type { Target } from '@keyhub/listener/dist/targets/target';
import { makeTempDir, type TempDir } from '../env';

/** The inbox's rules with fakes for the HSM and the bus (the end-to-end suite runs the same attacks on the real parts). */
describe('listener inbox: unverified input earns nothing; the last delivery ends in a failed receipt', () => {
  let dir: TempDir;
  let journal: Journal;
  let published: Array<SignedEnvelope<Message>>;
  let signs: number;
  let importer: Target['import'];
  const hub = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const hubDer = hub.publicKey.export({ type: 'spki', format: 'der' });
  const hubSign = (payload: KeyPackage): Uint8Array =>
    encodeEnvelope({ payload, signature: { alg: 'ES256', keyId: 'hub', value: sign('sha256', signingInput(payload), { key: hub.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') } });
  let sequence = 0;
  const pkg = (): KeyPackage => ({
    type: MESSAGE_TYPES.keyPackage,
    id: randomUUID(),
    listenerId: 'site-a',
    target: 'hsm',
    distributionId: randomUUID(),
    sequence: ++sequence,
    issuedAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    key: { id: randomUUID(), name: 'k', version: 1, algorithm: 'AES-256', length: 32, usages: ['encrypt'], exportable: false, kcv: 'abcdef' },
    wrapping: { kekId: randomUUID(), kekVersion: 1, mechanism: 'AES-KWP', blob: randomBytes(40).toString('base64') },
  });
  let inbox: Inbox;

  beforeEach(async () => {
    dir = await makeTempDir('inbox');
    journal = Journal.open(dir.path);
    const hubKeys = new HubKeyStore(dir.path, publicKeyFingerprint(hubDer));
    hubKeys.save(hubDer);
    published = [];
    signs = 0;
    importer = async (req) => ({ outcome: 'imported', kcv: req.key.kcv });
    const keys = {
      sign: async <M extends Message>(payload: M): Promise<SignedEnvelope<M>> => {
        signs++;
        return { payload, signature: { alg: 'ES256', keyId: 'listener', value: Buffer.alloc(64).toString('base64') } };
      },
    } as unknown as ListenerKeys;
    const target = { name: 'hsm', kind: 'pkcs11', import: (r: Parameters<Target['import']>[0]) => importer(r) } as unknown as Target;
    inbox = new Inbox('site-a', keys, hubKeys, journal, new Map([['hsm', target]]), { publishUp: async (_k, e) => void published.push(e) }, createLogger('inbox-test', 'silent'));
  });
  afterEach(async () => {
    journal.close();
    await dir.remove();
  });

  it('a copy of a real package with a garbage signature, garbage, and unknown types: dropped, no receipt, nothing signed or journaled', async () => {
    const genuine = pkg();
    const forged = encodeEnvelope({ payload: genuine, signature: { alg: 'ES256', keyId: 'hub', value: randomBytes(64).toString('base64') } });
    assert.deepEqual(await inbox.handle({ data: forged, streamSeq: 1 }), { kind: 'dropped', code: 'SIGNATURE_INVALID' });
    assert.deepEqual(await inbox.handle({ data: forged, streamSeq: 2, lastAttempt: true }), { kind: 'dropped', code: 'SIGNATURE_INVALID' });
    assert.deepEqual(await inbox.handle({ data: Buffer.from('{nope'), streamSeq: 3 }), { kind: 'dropped', code: 'MESSAGE_MALFORMED' });
    assert.deepEqual(await inbox.handle({ data: Buffer.alloc(70_000, 0x41), streamSeq: 4 }), { kind: 'dropped', code: 'MESSAGE_TOO_LARGE' });
    assert.equal(published.length, 0);
    assert.equal(signs, 0);
    assert.equal(journal.size, 0);
    assert.equal(journal.isReplay(genuine.sequence), false, 'the forgery did not take the sequence');
    // The genuine package afterwards imports, and its receipt names the hash of its exact bytes.
    const bytes = hubSign(genuine);
    const r = await inbox.handle({ data: bytes, streamSeq: 5 });
    assert.deepEqual(r, { kind: 'receipt', outcome: 'imported', code: undefined, packageId: genuine.id });
    const receipt = published[0].payload as Receipt;
    assert.equal(receipt.packageSha256, packageSha256(bytes));
    assert.equal(journal.get(genuine.id)?.sha256, packageSha256(bytes));
  });

  it('a passing failure is retried until the last delivery, which ends in a failed receipt carrying the code', async () => {
    importer = async () => {
      throw new KeyhubError('HSM_ERROR', 'token gone', { ckr: 'CKR_DEVICE_ERROR' });
    };
    const p = pkg();
    const bytes = hubSign(p);
    for (let i = 0; i < 4; i++) await assert.rejects(inbox.handle({ data: bytes, streamSeq: 9 }), (e: unknown) => KeyhubError.is(e, 'HSM_ERROR'));
    assert.equal(published.length, 0);
    assert.equal(journal.isReplay(p.sequence), false, 'the claim was given back each time');
    const last = await inbox.handle({ data: bytes, streamSeq: 9, lastAttempt: true });
    assert.deepEqual(last, { kind: 'receipt', outcome: 'failed', code: 'HSM_ERROR', packageId: p.id });
    const receipt = published[0].payload as Receipt;
    assert.equal(receipt.error?.code, 'HSM_ERROR');
    assert.equal(receipt.packageSha256, packageSha256(bytes));
    assert.equal(journal.isReplay(p.sequence), true, 'the package is done with');
  });

  it('a package whose signed policy does not allow this kind of target is rejected before the target sees it (TARGET_KIND_NOT_ALLOWED)', async () => {
    let imports = 0;
    importer = async (req) => {
      imports++;
      return { outcome: 'imported', kcv: req.key.kcv };
    };
    const keystoreOnly = pkg();
    keystoreOnly.key.targetKinds = ['keystore'];
    const r = await inbox.handle({ data: hubSign(keystoreOnly), streamSeq: 20 });
    assert.deepEqual(r, { kind: 'receipt', outcome: 'rejected', code: 'TARGET_KIND_NOT_ALLOWED', packageId: keystoreOnly.id });
    assert.equal(imports, 0);
    // Absent means the default, HSM only; a policy that names pkcs11 with others reaches the token too.
    const wide = pkg();
    wide.key.targetKinds = ['keystore', 'pkcs11'];
    assert.equal(((await inbox.handle({ data: hubSign(wide), streamSeq: 21 })) as { outcome: string }).outcome, 'imported');
    assert.equal(((await inbox.handle({ data: hubSign(pkg()), streamSeq: 22 })) as { outcome: string }).outcome, 'imported');
    assert.equal(imports, 2);
  });
});
