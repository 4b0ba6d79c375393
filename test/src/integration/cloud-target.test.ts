/**
 * The cloud TARGET (listener/src/targets/cloud-target.ts), built from listener
 * configuration (secrets from environment variables and owner-only files) by
 * the same code the listener runtime uses, in process against SoftHSM2 and
 * the local stand-ins: packages as the hub makes them (wrapped under the
 * target's transit KEK) are unwrapped in the site token as session objects,
 * checked by KCV there, re-wrapped for the cloud (inside the token for
 * OAEP SHA-1, in memory for SHA-256), and the stand-in's independent unwrap
 * (Python `cryptography`) gives the hub's KCV. Lifecycle commands disable
 * and destroy at the cloud; failures have their codes and lose nothing.
 */
import { strict as assert } from 'node:assert';
import { createHmac, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KEY_ALGORITHM_INFO, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { aesKcv, KeyhubError, Pkcs11Hsm, secretKcv, type KeyHandle, type SecretKcvMethod, type SecretKeyType } from '@keyhub/shared';
import { listenerConfigSchema, type CloudTargetConfig } from '@keyhub/listener/dist/config';
import type { CloudTarget } from '@keyhub/listener/dist/targets/cloud-target';
import type { ImportRequest } from '@keyhub/listener/dist/targets/target';
import { targetSecret, transitTarget } from '@keyhub/listener/dist/targets/transit-targets';
import type { TransitKeys } from '@keyhub/listener/dist/targets/transit-keys';
import { createSoftHsm, type SoftHsmEnv } from '../env';
import { AwsKmsStandin } from '../fixtures/cloud/aws-standin';
import { AzureKeyVaultStandin } from '../fixtures/cloud/azure-standin';
import { GcpKmsStandin } from '../fixtures/cloud/gcp-standin';

const KEY_RING = 'projects/keyhub-test/locations/europe-west1/keyRings/keyhub-targets';
const FAST_RETRY = { attempts: 4, baseDelayMs: 20, maxDelayMs: 100 };
const code = (c: string) => (e: unknown) => KeyhubError.is(e, c as never) || assert.fail(`expected ${c}, got ${KeyhubError.from(e).code}: ${(e as Error).message}`);

describe('cloud targets: packages under a transit KEK land in each cloud stand-in with the hub KCV', function () {
  this.timeout(120_000);
  const aws = new AwsKmsStandin();
  const azure = new AzureKeyVaultStandin();
  const gcp = new GcpKmsStandin();
  let env: SoftHsmEnv;
  let hub: Pkcs11Hsm;
  let site: Pkcs11Hsm;
  let home: string;
  let awsUrl = '';
  let gcpPort = 0;
  /** Buffers each target zeroed, by target (each has its own read-out, with its own timers). */
  const wipedBy = new Map<string, Buffer[]>();
  const kinds = new Map<string, { target: CloudTarget; keys: TransitKeys; kek: KeyHandle; kekId: string }>();

  before(async () => {
    // Nothing may probe a metadata address: static credentials and local endpoints only.
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    process.env.METADATA_SERVER_DETECTION = 'none';
    awsUrl = await aws.start();
    await azure.start();
    azure.createKek('keyhub-kek');
    gcpPort = await gcp.start();
    env = await createSoftHsm(['clt-hub', 'clt-site']);
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_CLT_HUB_PIN = env.tokens[0].pin;
    process.env.KEYHUB_CLT_SITE_PIN = env.tokens[1].pin;
    hub = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'clt-hub', pinEnv: 'KEYHUB_CLT_HUB_PIN' });
    site = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'clt-site', pinEnv: 'KEYHUB_CLT_SITE_PIN' });
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-clt-home-'));
    // The secrets, as a site would hold them: in the environment, or in owner-only files.
    process.env.KEYHUB_CLT_AWS_KEY_ID = aws.accessKeyId;
    const secretFile = path.join(home, 'aws-secret');
    fs.writeFileSync(secretFile, 'test-secret-not-used-for-signing-checks\n', { mode: 0o600 });
    const azureToken = path.join(home, 'azure-token');
    fs.writeFileSync(azureToken, azure.token, { mode: 0o600 });
    process.env.KEYHUB_CLT_GCP_TOKEN = gcp.token;
    const config = listenerConfigSchema.parse({
      id: 'clt-site',
      nats: { servers: ['nats://127.0.0.1:4222'] },
      hubFingerprint: 'ab'.repeat(32),
      hsm: { module: env.modulePath, tokenLabel: 'clt-site', pinEnv: 'KEYHUB_CLT_SITE_PIN' },
      targets: [
        {
          name: 'aws-256',
          kind: 'aws-kms',
          region: aws.region,
          endpoint: awsUrl,
          credentials: { kind: 'static', accessKeyId: { env: 'KEYHUB_CLT_AWS_KEY_ID' }, secretAccessKey: { file: secretFile } },
          wrappingKeySpec: 'RSA_2048',
          wrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_256',
          expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
          retry: FAST_RETRY,
        },
        {
          name: 'aws-sha1',
          kind: 'aws-kms',
          region: aws.region,
          endpoint: awsUrl,
          aliasPrefix: 'alias/keyhub-sha1/',
          credentials: { kind: 'static', accessKeyId: { env: 'KEYHUB_CLT_AWS_KEY_ID' }, secretAccessKey: { file: secretFile } },
          wrappingKeySpec: 'RSA_2048',
          wrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_1',
          expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
          retry: FAST_RETRY,
        },
        {
          name: 'azure',
          kind: 'azure-kv',
          vaultUrl: azure.url,
          kekName: 'keyhub-kek',
          credentials: { kind: 'static-token', token: { file: azureToken } },
          insecureLocalEndpoint: true,
          retry: FAST_RETRY,
        },
        {
          name: 'gcp',
          kind: 'gcp-kms',
          keyRing: KEY_RING,
          endpoint: { host: '127.0.0.1', port: gcpPort, protocol: 'http' },
          credentials: { kind: 'static-token', token: { env: 'KEYHUB_CLT_GCP_TOKEN' } },
          importMethod: 'RSA_OAEP_3072_SHA256_AES_256',
          pollIntervalMs: 20,
          retry: FAST_RETRY,
        },
      ],
    });
    for (const t of config.targets) {
      wipedBy.set(t.name, []);
      const built = transitTarget(t as CloudTargetConfig, site, { home, onWiped: (b) => wipedBy.get(t.name)!.push(...b) });
      const kek = await installTransitKek(built.keys);
      kinds.set(t.name, { target: built.target as CloudTarget, keys: built.keys, ...kek });
    }
  });

  after(async () => {
    await aws.close();
    await azure.close();
    await gcp.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
    await site?.close();
    await hub?.close();
    await env?.cleanup();
  });

  /** The target-KEK exchange: transport key in the site token, the hub's KEK OAEP-wrapped to it, KCV-confirmed install. */
  async function installTransitKek(keys: TransitKeys): Promise<{ kek: KeyHandle; kekId: string }> {
    const { spki } = await keys.ensureTargetTransportKey(2048);
    const kek = await hub.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const kekId = randomUUID();
    const blob = await hub.wrapRsaOaep(await hub.importRsaWrappingKey(spki), kek, 'sha1');
    assert.equal(await keys.installTargetKek(blob, 'sha1', kekId, 1, (h) => aesKcv(site, h), await aesKcv(hub, kek)), 'stored');
    return { kek, kekId };
  }

  async function packageFor(target: string, algorithm: KeyAlgorithm, name: string, version = 1): Promise<ImportRequest> {
    const info = KEY_ALGORITHM_INFO[algorithm];
    const usages: KeyUsage[] = info.kcv === 'hmac-sha256' ? ['sign', 'verify'] : ['encrypt', 'decrypt'];
    const h = await hub.generateSecretKey(info.keyType as SecretKeyType, info.lengthBytes, { token: false, extractable: true, sign: true });
    const kcv = await secretKcv(hub, h, info.kcv as SecretKcvMethod);
    const t = kinds.get(target)!;
    return {
      key: { id: randomUUID(), name, version, algorithm, length: info.lengthBytes, usages, exportable: false, kcv, targetKinds: [t.target.kind] },
      wrapped: { kekId: t.kekId, kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(t.kek, h) },
    };
  }

  /** What the stand-in holds, as it unwrapped it with Python's `cryptography`. */
  function cloudMaterial(target: string, name: string, version: number, cloudVersionId: string): Buffer | undefined {
    if (target === 'aws-256') return aws.material(`alias/keyhub/${name}/v${version}`);
    if (target === 'aws-sha1') return aws.material(`alias/keyhub-sha1/${name}/v${version}`);
    if (target === 'azure') return azure.versions(name).find((v) => v.version === cloudVersionId)?.material;
    return gcp.version(cloudVersionId)?.material;
  }

  const PATHS: Record<string, string> = {
    'aws-256': 'in memory (OAEP SHA-256)',
    'aws-sha1': 'in the token (OAEP SHA-1 + KWP)',
    azure: 'in the token (.byok, OAEP SHA-1)',
    gcp: 'in memory (RSA_OAEP_3072_SHA256_AES_256)',
  };
  for (const name of ['aws-256', 'aws-sha1', 'azure', 'gcp']) {
    it(`${name}: an AES-256 package is imported, wrapped ${PATHS[name]}; the stand-in's independent unwrap has the hub's KCV; again is already_present; clear buffers wiped`, async () => {
      const { target } = kinds.get(name)!;
      const pkg = await packageFor(name, 'AES-256', `orders-${name}`);
      const wiped = wipedBy.get(name)!;
      wiped.length = 0;
      const res = await target.import(pkg);
      assert.deepEqual([res.outcome, res.kcv], ['imported', pkg.key.kcv]);
      const record = (await target.records()).get(`${pkg.key.id}/1`)!;
      // What the receipt carries besides the KCV: the cloud's ids, its import state and the wrapping.
      assert.deepEqual(res.cloud, { keyId: record.cloudKeyId, versionId: record.cloudVersionId, importState: record.importState, wrapping: record.wrapping });
      assert.ok(record.cloudKeyId && record.cloudVersionId, 'the cloud ids are kept for the receipt and inventory');
      assert.match(record.importState, /^(Enabled|ENABLED)$/);
      const material = cloudMaterial(name, pkg.key.name, 1, record.cloudVersionId);
      assert.ok(material, 'the stand-in holds material');
      assert.equal(await aws.python.aesKcv(material), pkg.key.kcv, "Python's unwrap of what the cloud got has the hub's KCV");
      if (name.endsWith('256') || name === 'gcp') {
        assert.ok(wiped.length > 0 && wiped.every((b) => b.every((x) => x === 0)), 'the bytes read out for the in-memory wrap are wiped');
      } else {
        assert.equal(wiped.length, 0, 'nothing was read out of the token: the wrap happened inside it');
      }
      const again = await target.import(pkg);
      assert.deepEqual([again.outcome, again.kcv, again.cloud?.keyId], ['already_present', pkg.key.kcv, record.cloudKeyId]);
      assert.deepEqual(await target.health(), { healthy: true });
      const inv = await target.inventory();
      assert.ok(inv.some((i) => i.keyId === pkg.key.id && i.version === 1 && i.enabled));
    });
  }

  it('an HMAC-SHA256 package lands in AWS (wrapped in the token): the HMAC KCV of what the stand-in unwrapped is the hub KCV', async () => {
    const { target } = kinds.get('aws-sha1')!;
    const pkg = await packageFor('aws-sha1', 'HMAC-SHA256', 'api-mac');
    assert.equal((await target.import(pkg)).outcome, 'imported');
    const material = aws.material('alias/keyhub-sha1/api-mac/v1');
    assert.ok(material?.length === 32);
    assert.equal(createHmac('sha256', material).update(Buffer.alloc(16)).digest('hex').slice(0, 6), pkg.key.kcv);
  });

  it('lifecycle: suspend disables the cloud key, resume is COMMAND_NOT_APPLICABLE, destroy deletes the material (AWS) / schedules destruction (Google)', async () => {
    for (const name of ['aws-256', 'gcp', 'azure']) {
      const { target } = kinds.get(name)!;
      const pkg = await packageFor(name, 'AES-256', `life-${name}`);
      await target.import(pkg);
      const ref = { keyId: pkg.key.id, version: 1 };
      const record = (await target.records()).get(`${pkg.key.id}/1`)!;
      assert.equal(await target.suspend(ref), 'usages_off');
      if (name === 'aws-256') assert.equal(aws.state(`alias/keyhub/life-${name}/v1`), 'Disabled');
      if (name === 'azure') assert.equal(azure.versions(`life-${name}`).find((v) => v.version === record.cloudVersionId)?.enabled, false);
      await assert.rejects(target.resume(ref, ['encrypt']), code('COMMAND_NOT_APPLICABLE'));
      assert.equal((await target.inventory()).find((i) => i.keyId === pkg.key.id)?.enabled, false);
      assert.equal(await target.destroy(ref), true);
      if (name === 'aws-256') assert.equal(aws.material(`alias/keyhub/life-${name}/v1`), undefined, 'imported material deleted');
      if (name === 'gcp') assert.equal(gcp.version(record.cloudVersionId)?.material, undefined, 'version scheduled for destruction');
      assert.equal(await target.destroy(ref), false, 'a second destroy finds nothing');
      assert.equal(await target.compromise(ref), 'absent');
    }
  });

  it("a package under another target's transit KEK is KEK_UNKNOWN; one with a wrong KCV is KCV_MISMATCH; an HSM-only key (or one for another cloud) is TARGET_KIND_NOT_ALLOWED; the cloud is never called", async () => {
    const { target } = kinds.get('aws-256')!;
    const calls = aws.calls.length;
    const foreign = await packageFor('azure', 'AES-256', 'foreign');
    await assert.rejects(target.import({ ...foreign, key: { ...foreign.key, targetKinds: ['aws-kms', 'azure-kv'] } }), code('KEK_UNKNOWN'));
    const bad = await packageFor('aws-256', 'AES-256', 'bad-kcv');
    bad.key.kcv = bad.key.kcv === '000000' ? '000001' : '000000';
    await assert.rejects(target.import(bad), code('KCV_MISMATCH'));
    const hsmOnly = await packageFor('aws-256', 'AES-256', 'hsm-only');
    delete (hsmOnly.key as { targetKinds?: unknown }).targetKinds;
    await assert.rejects(target.import(hsmOnly), code('TARGET_KIND_NOT_ALLOWED'));
    const otherCloud = await packageFor('aws-256', 'AES-256', 'azure-only');
    await assert.rejects(target.import({ ...otherCloud, key: { ...otherCloud.key, targetKinds: ['azure-kv'] } }), code('TARGET_KIND_NOT_ALLOWED'));
    assert.equal(aws.calls.length, calls, 'no request reached the cloud');
  });

  it('import token expired twice is CLOUD_IMPORT_TOKEN_EXPIRED with nothing imported; once the fault is gone the same package imports', async () => {
    const { target } = kinds.get('aws-256')!;
    const pkg = await packageFor('aws-256', 'AES-256', 'token-expiry');
    aws.faults.expiredTokens = 2;
    try {
      await assert.rejects(target.import(pkg), code('CLOUD_IMPORT_TOKEN_EXPIRED'));
    } finally {
      aws.faults.expiredTokens = 0;
    }
    assert.equal(aws.material('alias/keyhub/token-expiry/v1'), undefined);
    assert.equal((await target.records()).has(`${pkg.key.id}/1`), false, 'nothing recorded as imported');
    const after = await target.import(pkg);
    assert.deepEqual([after.outcome, after.kcv], ['imported', pkg.key.kcv]);
  });

  it('5xx answers are retried with back-off and the import succeeds; a persisting outage is CLOUD_UNAVAILABLE (retryable, health down) and the same package imports once it is over', async () => {
    for (const [name, faults] of [
      ['azure', azure.faults],
      ['gcp', gcp.faults],
      ['aws-256', aws.faults],
    ] as const) {
      const { target } = kinds.get(name)!;
      faults.serverErrors = 2;
      assert.equal((await target.import(await packageFor(name, 'AES-256', `blip-${name}`))).outcome, 'imported');
      assert.equal(faults.serverErrors, 0, `${name}: both injected 5xx were met and retried`);
      const pkg = await packageFor(name, 'AES-256', `outage-${name}`);
      faults.serverErrors = 1000;
      try {
        await assert.rejects(target.import(pkg), (e: unknown) => code('CLOUD_UNAVAILABLE')(e) && (e as KeyhubError).retryable);
        assert.deepEqual(await target.health(), { healthy: false, detail: 'CLOUD_UNAVAILABLE' });
      } finally {
        faults.serverErrors = 0;
      }
      const after = await target.import(pkg);
      assert.deepEqual([after.outcome, after.kcv], ['imported', pkg.key.kcv]);
    }
  });

  it('material the cloud refuses (other material under a version already imported) is CLOUD_MATERIAL_REJECTED; the first import stays', async () => {
    const { target } = kinds.get('aws-256')!;
    const first = await packageFor('aws-256', 'AES-256', 'one-material');
    await target.import(first);
    const other = await packageFor('aws-256', 'AES-256', 'one-material');
    await assert.rejects(target.import(other), code('CLOUD_MATERIAL_REJECTED'));
    assert.equal(await aws.python.aesKcv(aws.material('alias/keyhub/one-material/v1')!), first.key.kcv);
  });

  it('health probes each cloud with the configured credentials: reachable and accepted, refused credentials, an outage', async () => {
    const badToken = path.join(home, 'bad-token');
    fs.writeFileSync(badToken, 'not-the-token', { mode: 0o600 });
    const base = { id: 'h', nats: { servers: ['nats://127.0.0.1:4222'] }, hubFingerprint: 'ab'.repeat(32), hsm: { module: env.modulePath, tokenLabel: 'clt-site' } };
    const build = (t: Record<string, unknown>): CloudTarget =>
      transitTarget(listenerConfigSchema.parse({ ...base, targets: [t] }).targets[0] as CloudTargetConfig, site, { home }).target as CloudTarget;
    const awsT = {
      name: 'h-aws',
      kind: 'aws-kms',
      region: aws.region,
      endpoint: awsUrl,
      credentials: { kind: 'static', accessKeyId: { env: 'KEYHUB_CLT_AWS_KEY_ID' }, secretAccessKey: { file: badToken } },
      expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
      retry: FAST_RETRY,
    };
    const gcpT = {
      name: 'h-gcp',
      kind: 'gcp-kms',
      keyRing: KEY_RING,
      endpoint: { host: '127.0.0.1', port: gcpPort, protocol: 'http' },
      credentials: { kind: 'static-token', token: { env: 'KEYHUB_CLT_GCP_TOKEN' } },
      retry: FAST_RETRY,
    };
    const azureT = {
      name: 'h-azure',
      kind: 'azure-kv',
      vaultUrl: azure.url,
      kekName: 'keyhub-kek',
      credentials: { kind: 'static-token', token: { file: badToken } },
      insecureLocalEndpoint: true,
      retry: FAST_RETRY,
    };
    assert.deepEqual(await build(awsT).health(), { healthy: true }, 'AWS: the stand-in checks the access key id, not the signature');
    assert.deepEqual(await build(gcpT).health(), { healthy: true });
    assert.deepEqual(await build({ ...gcpT, credentials: { kind: 'static-token', token: { file: badToken } } }).health(), { healthy: false, detail: 'CLOUD_REQUEST_REJECTED' });
    assert.deepEqual(await build(azureT).health(), { healthy: false, detail: 'CLOUD_REQUEST_REJECTED' });
    gcp.faults.serverErrors = 1000;
    try {
      assert.deepEqual(await build(gcpT).health(), { healthy: false, detail: 'CLOUD_UNAVAILABLE' });
    } finally {
      gcp.faults.serverErrors = 0;
    }
  });

  it('configuration: secrets are never inline, and a missing secret names where it was looked for, not a value', async () => {
    const base = { id: 'x', nats: { servers: ['nats://127.0.0.1:4222'] }, hubFingerprint: 'ab'.repeat(32), hsm: { module: '/m.so', tokenLabel: 't' } };
    const aws1 = { name: 'a', kind: 'aws-kms', region: 'eu-west-1', expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' } };
    const bad = [
      { ...aws1, credentials: { kind: 'static', accessKeyId: 'AKIA', secretAccessKey: 'inline-secret' } },
      { name: 'k', kind: 'keystore', path: '/tmp/k.p12', password: 'inline' },
      { name: 'k', kind: 'keystore', path: '/tmp/k.p12', password: {} },
      { name: 'k', kind: 'keystore', path: 'relative.p12', password: { env: 'P' } },
      { name: 'g', kind: 'gcp-kms', keyRing: KEY_RING, credentials: { kind: 'static-token', token: 'ya29.inline' } },
    ];
    for (const t of bad) assert.equal(listenerConfigSchema.safeParse({ ...base, targets: [t] }).success, false, JSON.stringify(t));
    const ok = listenerConfigSchema.parse({
      ...base,
      targets: [
        { name: 'k', kind: 'keystore', path: '/tmp/k.p12', password: { env: 'KEYHUB_CLT_NOT_SET' } },
        { ...aws1, credentials: { kind: 'platform' } },
      ],
    });
    const ks = ok.targets[0];
    assert.ok(ks.kind === 'keystore');
    assert.deepEqual([ks.type, ks.pkcs12KeyIterations, ks.pkcs12MacIterations, ks.jceksIterations], ['pkcs12', 10_000, 10_000, 10_000]);
    const built = transitTarget(ks, site, { home });
    assert.deepEqual(await built.target.health(), { healthy: false, detail: 'CONFIG_INVALID' });
    // A cloud secret is read at first use: the runtime (and every CLI command) opens without it; the target reports it missing.
    const noSecret = listenerConfigSchema.parse({
      ...base,
      targets: [{ ...aws1, credentials: { kind: 'static', accessKeyId: { env: 'KEYHUB_CLT_NOT_SET' }, secretAccessKey: { env: 'KEYHUB_CLT_NOT_SET' } } }],
    }).targets[0];
    const cloud = transitTarget(noSecret as CloudTargetConfig, site, { home });
    assert.deepEqual(await cloud.target.health(), { healthy: false, detail: 'CONFIG_INVALID' });
    assert.throws(
      () => targetSecret({ env: 'KEYHUB_CLT_NOT_SET' }, 'keystore password of target k'),
      (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID') && /KEYHUB_CLT_NOT_SET/.test((e as Error).message),
    );
  });
});
