import { strict as assert } from 'node:assert';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { aesKcv, KeyhubError, kcvHex, Pkcs11Hsm } from '@keyhub/shared';
import { AwsKmsImporter, awsKmsClient } from '@keyhub/listener/dist/targets/cloud/aws/aws-importer';
import { awsKmsSettings, type AwsKmsSettings } from '@keyhub/listener/dist/targets/cloud/aws/aws-settings';
import type { CloudImportRequest } from '@keyhub/listener/dist/targets/cloud/importer';
import { createSoftHsm, type SoftHsmEnv } from '../env';
import { AwsKmsStandin } from '../fixtures/cloud/aws-standin';
import { rsaWrappingKey } from '../fixtures/cloud/http-standin';

const FAST_RETRY = { attempts: 4, baseDelayMs: 20, maxDelayMs: 100 };
let seq = 0;

describe('cloud BYOK: AWS KMS through @aws-sdk/client-kms against the stand-in', function () {
  this.timeout(60_000);
  const standin = new AwsKmsStandin();
  let endpoint: string;
  let env: SoftHsmEnv;
  let hsm: Pkcs11Hsm;

  before(async () => {
    // No SDK may look for an instance role: credentials are always static here.
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    endpoint = await standin.start();
    env = await createSoftHsm(['cloud-aws']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_TEST_CLOUD_AWS_PIN = env.tokens[0].pin;
    hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'cloud-aws', pinEnv: 'KEYHUB_TEST_CLOUD_AWS_PIN' });
  });

  after(async () => {
    await standin.close();
    await hsm?.close();
    await env?.cleanup();
  });

  function importer(over: Partial<Record<keyof AwsKmsSettings, unknown>> = {}): AwsKmsImporter {
    const settings = awsKmsSettings.parse({
      region: standin.region,
      endpoint,
      credentials: { kind: 'static', accessKeyId: standin.accessKeyId, secretAccessKey: 'test-secret-not-used-for-signing-checks' },
      wrappingKeySpec: 'RSA_2048',
      expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
      retry: FAST_RETRY,
      ...over,
    });
    return new AwsKmsImporter(awsKmsClient(settings), settings);
  }

  const aesRequest = (bytes: Buffer, keyName = `aes-${++seq}`): CloudImportRequest => ({ material: { source: 'bytes', bytes }, algorithm: 'AES-256', keyName, version: 1 });

  for (const alg of ['RSA_AES_KEY_WRAP_SHA_1', 'RSA_AES_KEY_WRAP_SHA_256', 'RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'] as const) {
    it(`imports AES-256 bytes with ${alg}: the stand-in unwraps exactly the key (Python), KCVs agree, bytes wiped`, async () => {
      const key = randomBytes(32);
      const copy = Buffer.from(key);
      const req = aesRequest(key);
      const res = await importer({ wrappingAlgorithm: alg }).importKey(req);
      assert.equal(res.importState, 'Enabled');
      assert.equal(res.wrapping, alg);
      assert.match(res.cloudKeyId, /^arn:aws:kms:/);
      const got = standin.material(`alias/keyhub/${req.keyName}/v1`);
      assert.ok(got?.equals(copy), 'the stand-in holds exactly the imported key');
      assert.equal(res.kcv, await standin.python.aesKcv(copy));
      assert.ok(
        key.every((b) => b === 0),
        'the caller-supplied bytes are wiped after the import',
      );
    });
  }

  it('imports an AES-256 key from the HSM (RSA_AES_KEY_WRAP_SHA_1 in the token) and an HMAC key (RSAES_OAEP_SHA_1), with a MAC proof of possession', async () => {
    const aes = await hsm.generateAesKey(32, { token: false, sensitive: true, extractable: true, sign: true });
    const kcv = await aesKcv(hsm, aes);
    const a = await importer({ wrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_1' }).importKey({
      material: { source: 'hsm', hsm, handle: aes, lengthBytes: 32, kcv },
      algorithm: 'AES-256',
      keyName: 'hsm-aes',
      version: 3,
    });
    assert.equal(a.kcv, kcv);
    assert.equal(await standin.python.aesKcv(standin.material('alias/keyhub/hsm-aes/v3') as Buffer), kcv, 'the KCV of what the cloud got equals the HSM key');

    const hmac = await hsm.generateHmacKey(32, { token: false, sensitive: true, extractable: true });
    const hmacKcv = kcvHex(await hsm.hmacSha256(hmac, Buffer.alloc(16)));
    const aws = importer({ wrappingAlgorithm: 'RSAES_OAEP_SHA_1' });
    await aws.importKey({ material: { source: 'hsm', hsm, handle: hmac, lengthBytes: 32, kcv: hmacKcv }, algorithm: 'HMAC-SHA256', keyName: 'hsm-hmac', version: 1 });
    assert.equal(
      kcvHex(
        createHmac('sha256', standin.material('alias/keyhub/hsm-hmac/v1') as Buffer)
          .update(Buffer.alloc(16))
          .digest(),
      ),
      hmacKcv,
    );
    const message = Buffer.from('keyhub proof of possession v1');
    const cloudMac = await aws.macProof({ keyName: 'hsm-hmac', version: 1 }, message, 'HMAC_SHA_256');
    assert.ok(cloudMac.equals(await hsm.hmacSha256(hmac, message)), 'the MAC KMS computes equals the one the HSM computes');
  });

  it('refuses SHA-256 OAEP for HSM material (SoftHSM2 has SHA-1 only) and direct OAEP for private keys', async () => {
    const aes = await hsm.generateAesKey(32, { token: false, sensitive: true, extractable: true });
    await assert.rejects(
      importer({ wrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_256' }).importKey({
        material: { source: 'hsm', hsm, handle: aes, lengthBytes: 32, kcv: '000000' },
        algorithm: 'AES-256',
        keyName: 'hsm-256',
        version: 1,
      }),
      (e: unknown) => KeyhubError.is(e, 'CLOUD_WRAP_UNSUPPORTED'),
    );
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
    await assert.rejects(
      importer({ wrappingAlgorithm: 'RSAES_OAEP_SHA_256' }).importKey({ material: { source: 'bytes', bytes: pkcs8 }, algorithm: 'EC-P256', keyName: 'ec-oaep', version: 1 }),
      (e: unknown) => KeyhubError.is(e, 'CLOUD_WRAP_UNSUPPORTED'),
    );
  });

  it('imports RSA and EC private keys (PKCS#8) with RSA_AES_KEY_WRAP_SHA_256', async () => {
    for (const [algorithm, pair] of [
      ['RSA-2048', generateKeyPairSync('rsa', { modulusLength: 2048 })],
      ['EC-P384', generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ] as const) {
      const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
      const copy = Buffer.from(pkcs8);
      const keyName = `pair-${algorithm}`;
      const res = await importer({ wrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_256' }).importKey({ material: { source: 'bytes', bytes: pkcs8 }, algorithm, keyName, version: 1 });
      assert.equal(res.importState, 'Enabled');
      assert.ok(standin.material(`alias/keyhub/${keyName}/v1`)?.equals(copy));
    }
  });

  it('reports a token bound to another key (CLOUD_IMPORT_TOKEN_INVALID)', async () => {
    standin.faults.tokenForOtherKey = true;
    try {
      await assert.rejects(importer().importKey(aesRequest(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_IMPORT_TOKEN_INVALID') && e.details?.awsError === 'InvalidImportTokenException');
    } finally {
      standin.faults.tokenForOtherKey = false;
    }
  });

  it('fetches fresh parameters once after an expired token, and reports a second expiry (CLOUD_IMPORT_TOKEN_EXPIRED)', async () => {
    standin.faults.expiredTokens = 1;
    const before = standin.calls.filter((c) => c === 'GetParametersForImport').length;
    const res = await importer().importKey(aesRequest(randomBytes(32)));
    assert.equal(res.importState, 'Enabled');
    assert.equal(standin.calls.filter((c) => c === 'GetParametersForImport').length - before, 2);
    standin.faults.expiredTokens = 2;
    await assert.rejects(importer().importKey(aesRequest(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_IMPORT_TOKEN_EXPIRED') && !e.retryable);
  });

  it('reports a wrong expiration model (CLOUD_EXPIRATION_MODEL_INVALID) and accepts an expiring one with ValidTo', async () => {
    for (const expiration of [{ model: 'KEY_MATERIAL_EXPIRES' }, { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE', validTo: new Date(Date.now() + 86_400_000) }]) {
      await assert.rejects(importer({ expiration }).importKey(aesRequest(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_EXPIRATION_MODEL_INVALID'));
    }
    const res = await importer({ expiration: { model: 'KEY_MATERIAL_EXPIRES', validTo: new Date(Date.now() + 30 * 86_400_000) } }).importKey(aesRequest(randomBytes(32)));
    assert.equal(res.importState, 'Enabled');
  });

  it('reports material that does not match the key spec or the material imported before (CLOUD_MATERIAL_REJECTED); identical re-import is accepted', async () => {
    // A 2048-bit key (the stand-in's own wrapping key, already generated) for an RSA_3072 KMS key.
    const small = Buffer.from(rsaWrappingKey(2048).pkcs8);
    await assert.rejects(importer().importKey({ material: { source: 'bytes', bytes: small }, algorithm: 'RSA-3072', keyName: 'rsa-mismatch', version: 1 }), (e: unknown) =>
      KeyhubError.is(e, 'CLOUD_MATERIAL_REJECTED'),
    );
    const key = randomBytes(32);
    await importer().importKey(aesRequest(Buffer.from(key), 'reimport'));
    await importer().importKey(aesRequest(Buffer.from(key), 'reimport'));
    await assert.rejects(
      importer().importKey(aesRequest(randomBytes(32), 'reimport')),
      (e: unknown) => KeyhubError.is(e, 'CLOUD_MATERIAL_REJECTED') && e.details?.awsError === 'IncorrectKeyMaterialException',
    );
  });

  it('retries a 5xx with back-off and then succeeds; reports CLOUD_UNAVAILABLE (retryable) when it persists', async () => {
    const start = standin.calls.length;
    standin.faults.serverErrors = 2;
    const res = await importer().importKey(aesRequest(randomBytes(32)));
    assert.equal(res.importState, 'Enabled');
    assert.equal(standin.calls.slice(start, start + 3).join(), 'DescribeKey,DescribeKey,DescribeKey', 'the first call was retried twice');
    standin.faults.serverErrors = 100;
    try {
      await assert.rejects(importer().importKey(aesRequest(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_UNAVAILABLE') && e.retryable);
    } finally {
      standin.faults.serverErrors = 0;
    }
  });

  it('reports an endpoint that does not answer as CLOUD_UNAVAILABLE after its retries', async () => {
    const closed = new AwsKmsStandin();
    const url = await closed.start();
    await closed.close();
    await assert.rejects(importer({ endpoint: url }).importKey(aesRequest(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_UNAVAILABLE') && e.retryable);
  });

  it('reports refused credentials (CLOUD_REQUEST_REJECTED, not retried)', async () => {
    const calls = standin.calls.length;
    const bad = importer({ credentials: { kind: 'static', accessKeyId: 'AKIAWRONG', secretAccessKey: 'x' } });
    await assert.rejects(bad.importKey(aesRequest(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_REQUEST_REJECTED') && !e.retryable);
    assert.equal(standin.calls.length - calls, 1);
  });

  it('disables the key (deactivate) and deletes the imported material (destroy), idempotently', async () => {
    const aws = importer();
    await aws.importKey(aesRequest(randomBytes(32), 'lifecycle'));
    await aws.disable({ keyName: 'lifecycle', version: 1 });
    assert.equal(standin.state('alias/keyhub/lifecycle/v1'), 'Disabled');
    await aws.destroy({ keyName: 'lifecycle', version: 1 });
    assert.equal(standin.state('alias/keyhub/lifecycle/v1'), 'PendingImport');
    assert.equal(standin.material('alias/keyhub/lifecycle/v1'), undefined);
    await aws.destroy({ keyName: 'lifecycle', version: 1 });
    await aws.destroy({ keyName: 'never-imported', version: 1 });
  });
});
