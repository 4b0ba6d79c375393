import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { aesKcv, KeyhubError, Pkcs11Hsm } from '@keyhub/shared';
import { AzureKeyVaultImporter, azureKeyClient } from '@keyhub/listener/dist/targets/cloud/azure/azure-importer';
import { azureKeyVaultSettings, type AzureKeyVaultSettings } from '@keyhub/listener/dist/targets/cloud/azure/azure-settings';
import type { CloudImportRequest } from '@keyhub/listener/dist/targets/cloud/importer';
import { createSoftHsm, type SoftHsmEnv } from '../env';
import { AzureKeyVaultStandin } from '../fixtures/cloud/azure-standin';
import { checkRetryContract } from './cloud-retry-checks';

let seq = 0;

describe('cloud BYOK: Azure Key Vault (.byok, key_hsm) through @azure/keyvault-keys against the stand-in', function () {
  this.timeout(60_000);
  const standin = new AzureKeyVaultStandin();
  let env: SoftHsmEnv;
  let hsm: Pkcs11Hsm;

  before(async () => {
    await standin.start();
    standin.createKek('keyhub-kek');
    standin.createKek('expired-kek', ['import'], new Date(Date.now() - 60_000));
    standin.createKek('loose-kek', ['import', 'wrapKey']);
    env = await createSoftHsm(['cloud-azure']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_TEST_CLOUD_AZURE_PIN = env.tokens[0].pin;
    hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'cloud-azure', pinEnv: 'KEYHUB_TEST_CLOUD_AZURE_PIN' });
  });

  after(async () => {
    await standin.close();
    await hsm?.close();
    await env?.cleanup();
  });

  function importer(over: Partial<Record<keyof AzureKeyVaultSettings, unknown>> = {}): AzureKeyVaultImporter {
    const settings = azureKeyVaultSettings.parse({
      vaultUrl: standin.url,
      kekName: 'keyhub-kek',
      credentials: { kind: 'static-token', token: standin.token },
      insecureLocalEndpoint: true,
      retry: { attempts: 4, baseDelayMs: 20, maxDelayMs: 100 },
      ...over,
    });
    return new AzureKeyVaultImporter(azureKeyClient(settings), settings);
  }

  const aes = (bytes: Buffer, keyName = `aes-${++seq}`): CloudImportRequest => ({ material: { source: 'bytes', bytes }, algorithm: 'AES-256', keyName, version: 1 });
  const only = (name: string) => standin.versions(name).filter((v) => v.material);

  it('answers the 401 Bearer challenge, imports AES-256 as oct-HSM: the stand-in unwraps exactly the key (Python, OAEP SHA-1), KCVs agree', async () => {
    const key = randomBytes(32);
    const copy = Buffer.from(key);
    const start = standin.calls.length;
    const res = await importer().importKey(aes(key, 'aes-first'));
    assert.deepEqual(standin.calls.slice(start, start + 2), ['GET keys/keyhub-kek', 'GET keys/keyhub-kek'], 'first request challenged (401), then sent with the token');
    assert.equal(res.importState, 'Enabled');
    assert.equal(res.wrapping, 'CKM_RSA_AES_KEY_WRAP_SHA_1');
    const [v] = only('aes-first');
    assert.equal(res.cloudVersionId, v.version);
    assert.ok(v.material?.equals(copy));
    assert.equal(res.kcv, await standin.python.aesKcv(copy));
    assert.ok(
      key.every((b) => b === 0),
      'bytes wiped',
    );
  });

  it('wraps an HSM key inside SoftHSM2 (OAEP SHA-1 + KWP in the token); a repeated import of the same version adds no Azure version', async () => {
    const h = await hsm.generateAesKey(32, { token: false, sensitive: true, extractable: true, sign: true });
    const kcv = await aesKcv(hsm, h);
    const req: CloudImportRequest = { material: { source: 'hsm', hsm, handle: h, lengthBytes: 32, kcv }, algorithm: 'AES-256', keyName: 'hsm-aes', version: 2 };
    const first = await importer().importKey(req);
    const again = await importer().importKey(req);
    assert.equal(again.cloudVersionId, first.cloudVersionId);
    assert.equal(only('hsm-aes').length, 1);
    assert.equal(await standin.python.aesKcv(only('hsm-aes')[0].material as Buffer), kcv);
  });

  it('imports RSA (RSA-HSM) and EC (EC-HSM) private keys as PKCS#8', async () => {
    for (const [algorithm, pair] of [
      ['RSA-2048', generateKeyPairSync('rsa', { modulusLength: 2048 })],
      ['EC-P256', generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ] as const) {
      const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
      const copy = Buffer.from(pkcs8);
      await importer().importKey({ material: { source: 'bytes', bytes: pkcs8 }, algorithm, keyName: `pair-${algorithm}`, version: 1 });
      assert.ok(only(`pair-${algorithm}`)[0].material?.equals(copy));
    }
  });

  it('reports a KEK replaced after it was read (CLOUD_IMPORT_TOKEN_INVALID), an expired KEK (CLOUD_IMPORT_TOKEN_EXPIRED) and refuses a KEK with more than `import`', async () => {
    standin.faults.dropKekAfterRead = true;
    await assert.rejects(importer().importKey(aes(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_IMPORT_TOKEN_INVALID') && e.details?.azureInnerError === 'KekNotFound');
    await assert.rejects(importer({ kekName: 'expired-kek' }).importKey(aes(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_IMPORT_TOKEN_EXPIRED'));
    const calls = standin.calls.length;
    await assert.rejects(importer({ kekName: 'loose-kek' }).importKey(aes(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_IMPORT_TOKEN_INVALID'));
    assert.ok(!standin.calls.slice(calls).some((c) => c.startsWith('PUT')), 'nothing was sent under a KEK that can do more than import');
  });

  it('reports an expiry the vault refuses (CLOUD_EXPIRATION_MODEL_INVALID) and material that does not fit the key type (CLOUD_MATERIAL_REJECTED)', async () => {
    await assert.rejects(importer({ expiresOn: new Date(Date.now() - 3600_000) }).importKey(aes(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_EXPIRATION_MODEL_INVALID'));
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'der', type: 'pkcs8' });
    await assert.rejects(importer().importKey({ material: { source: 'bytes', bytes: p384 }, algorithm: 'EC-P256', keyName: 'ec-mismatch', version: 1 }), (e: unknown) =>
      KeyhubError.is(e, 'CLOUD_MATERIAL_REJECTED'),
    );
  });

  it('retries a 5xx with back-off then succeeds; reports CLOUD_UNAVAILABLE when it persists; a refused token is CLOUD_REQUEST_REJECTED', async () => {
    await checkRetryContract({
      faults: standin.faults,
      importOne: () => importer().importKey(aes(randomBytes(32))),
      importWithBadToken: () => importer({ credentials: { kind: 'static-token', token: 'not-the-token' } }).importKey(aes(randomBytes(32))),
      enabledState: 'Enabled',
    });
  });

  it('imports into a vault that is not HSM-backed as a JWK only when the key policy allows a clear import, and says so', async () => {
    const jwk = importer({ importMode: 'jwk' });
    const pkcs8 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' });
    const calls = standin.calls.length;
    await assert.rejects(jwk.importKey({ material: { source: 'bytes', bytes: pkcs8() }, algorithm: 'EC-P256', keyName: 'jwk-ec', version: 1 }), (e: unknown) =>
      KeyhubError.is(e, 'CLOUD_CLEAR_IMPORT_REFUSED'),
    );
    assert.ok(!standin.calls.slice(calls).some((c) => c.startsWith('PUT')));
    const key = pkcs8();
    const copy = Buffer.from(key);
    const res = await jwk.importKey({ material: { source: 'bytes', bytes: key }, algorithm: 'EC-P256', keyName: 'jwk-ec', version: 1, allowClearImport: true });
    assert.equal(res.clearImport, true);
    assert.equal(res.wrapping, 'JWK');
    assert.ok(only('jwk-ec')[0].material?.equals(copy), 'the vault holds the same private key');
    assert.ok(key.every((b) => b === 0));
  });

  it('disables the version (deactivate) and marks it destroyed, disabled (destroy)', async () => {
    const az = importer();
    await az.importKey(aes(randomBytes(32), 'lifecycle'));
    await az.disable({ keyName: 'lifecycle', version: 1 });
    assert.equal(only('lifecycle')[0].enabled, false);
    await az.destroy({ keyName: 'lifecycle', version: 1 });
    assert.equal(only('lifecycle')[0].tags['keyhub-destroyed'], 'true');
    await az.destroy({ keyName: 'never-imported', version: 1 });
  });
});
