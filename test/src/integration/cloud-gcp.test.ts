import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { aesKcv, KeyhubError, Pkcs11Hsm } from '@keyhub/shared';
import { GcpKmsImporter, gcpKmsClient } from '@keyhub/listener/dist/targets/cloud/gcp/gcp-importer';
import { GCP_IMPORT_METHODS, gcpKmsSettings, type GcpKmsSettings } from '@keyhub/listener/dist/targets/cloud/gcp/gcp-settings';
import type { CloudImportRequest } from '@keyhub/listener/dist/targets/cloud/importer';
import { createSoftHsm, type SoftHsmEnv } from '../env';
import { GcpKmsStandin } from '../fixtures/cloud/gcp-standin';
import { checkRetryContract } from './cloud-retry-checks';
import { rsaWrappingKey } from '../fixtures/cloud/http-standin';

const KEY_RING = 'projects/keyhub-test/locations/europe-west1/keyRings/keyhub';
let seq = 0;

describe('cloud BYOK: Google Cloud KMS import jobs through @google-cloud/kms (REST fallback) against the stand-in', function () {
  this.timeout(90_000);
  const standin = new GcpKmsStandin();
  let port: number;
  let env: SoftHsmEnv;
  let hsm: Pkcs11Hsm;

  before(async () => {
    // The auth library must never look for a metadata server: explicit auth client, and this.
    process.env.METADATA_SERVER_DETECTION = 'none';
    port = await standin.start();
    env = await createSoftHsm(['cloud-gcp']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_TEST_CLOUD_GCP_PIN = env.tokens[0].pin;
    hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'cloud-gcp', pinEnv: 'KEYHUB_TEST_CLOUD_GCP_PIN' });
  });

  after(async () => {
    await standin.close();
    await hsm?.close();
    await env?.cleanup();
  });

  function importer(over: Partial<Record<keyof GcpKmsSettings, unknown>> = {}): GcpKmsImporter {
    const settings = gcpKmsSettings.parse({
      keyRing: KEY_RING,
      endpoint: { host: '127.0.0.1', port, protocol: 'http' },
      credentials: { kind: 'static-token', token: standin.token },
      importMethod: 'RSA_OAEP_3072_SHA256_AES_256',
      pollIntervalMs: 5,
      retry: { attempts: 4, baseDelayMs: 20, maxDelayMs: 100 },
      ...over,
    });
    return new GcpKmsImporter(gcpKmsClient(settings), settings);
  }

  const aes = (bytes: Buffer, keyName = `aes-${++seq}`): CloudImportRequest => ({ material: { source: 'bytes', bytes }, algorithm: 'AES-256', keyName, version: 1 });

  for (const method of GCP_IMPORT_METHODS) {
    it(`imports AES-256 with ${method}: PENDING_IMPORT polled to ENABLED, the stand-in unwraps exactly the key (Python), KCVs agree`, async () => {
      const key = randomBytes(32);
      const copy = Buffer.from(key);
      const res = await importer({ importMethod: method }).importKey(aes(key));
      assert.equal(res.importState, 'ENABLED');
      assert.equal(res.wrapping, method);
      const v = standin.version(res.cloudVersionId);
      assert.ok(v?.material?.equals(copy));
      assert.equal(res.kcv, await standin.python.aesKcv(copy));
      assert.ok(
        key.every((b) => b === 0),
        'bytes wiped',
      );
    });
  }

  it('wraps an HSM key inside SoftHSM2 (RSA_OAEP_3072_SHA1_AES_256); importing the same version again is idempotent', async () => {
    const h = await hsm.generateAesKey(32, { token: false, sensitive: true, extractable: true, sign: true });
    const kcv = await aesKcv(hsm, h);
    const req: CloudImportRequest = { material: { source: 'hsm', hsm, handle: h, lengthBytes: 32, kcv }, algorithm: 'AES-256', keyName: 'hsm-aes', version: 4 };
    const gcp = importer({ importMethod: 'RSA_OAEP_3072_SHA1_AES_256' });
    const res = await gcp.importKey(req);
    assert.equal(await standin.python.aesKcv(standin.version(res.cloudVersionId)?.material as Buffer), kcv);
    const again = await gcp.importKey(req);
    assert.equal(again.cloudVersionId, res.cloudVersionId);
  });

  it('reports an import job of another key ring (CLOUD_IMPORT_TOKEN_INVALID) and, after one fresh job, an expired one (CLOUD_IMPORT_TOKEN_EXPIRED)', async () => {
    standin.faults.foreignJob = true;
    try {
      await assert.rejects(importer().importKey(aes(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_IMPORT_TOKEN_INVALID'));
    } finally {
      standin.faults.foreignJob = false;
    }
    const jobs = () => standin.calls.filter((c) => c === 'POST importJobs').length;
    const before = jobs();
    standin.faults.expireJobsAtImport = 1;
    assert.equal((await importer().importKey(aes(randomBytes(32)))).importState, 'ENABLED');
    assert.equal(jobs() - before, 2, 'a fresh import job after the expired one');
    standin.faults.expireJobsAtImport = 2;
    await assert.rejects(importer().importKey(aes(randomBytes(32))), (e: unknown) => KeyhubError.is(e, 'CLOUD_IMPORT_TOKEN_EXPIRED'));
  });

  it('reports material that does not fit the algorithm (IMPORT_FAILED -> CLOUD_MATERIAL_REJECTED)', async () => {
    const rsa3072 = Buffer.from(rsaWrappingKey(3072).pkcs8);
    await assert.rejects(importer().importKey({ material: { source: 'bytes', bytes: rsa3072 }, algorithm: 'RSA-2048', keyName: 'rsa-mismatch', version: 1 }), (e: unknown) =>
      KeyhubError.is(e, 'CLOUD_MATERIAL_REJECTED'),
    );
  });

  it('retries a 5xx with back-off then succeeds; reports CLOUD_UNAVAILABLE when it persists; a refused token is CLOUD_REQUEST_REJECTED', async () => {
    await checkRetryContract({
      faults: standin.faults,
      importOne: () => importer().importKey(aes(randomBytes(32))),
      importWithBadToken: () => importer({ credentials: { kind: 'static-token', token: 'wrong' } }).importKey(aes(randomBytes(32))),
      enabledState: 'ENABLED',
    });
  });

  it('disables the version (deactivate) and schedules its destruction (destroy), idempotently', async () => {
    const gcp = importer();
    const res = await gcp.importKey(aes(randomBytes(32), 'lifecycle'));
    await gcp.disable({ keyName: 'lifecycle', version: 1 });
    assert.equal(standin.version(res.cloudVersionId)?.state, 2 /* DISABLED */);
    await gcp.destroy({ keyName: 'lifecycle', version: 1 });
    assert.equal(standin.version(res.cloudVersionId)?.state, 4 /* DESTROY_SCHEDULED */);
    assert.equal(standin.version(res.cloudVersionId)?.material, undefined);
    await gcp.destroy({ keyName: 'lifecycle', version: 1 });
    await gcp.destroy({ keyName: 'never-imported', version: 1 });
  });
});
