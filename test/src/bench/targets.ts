/**
 * Issue 12's target benchmark: catch-up of 1,000 keys into a PKCS#12
 * keystore and into the AWS KMS stand-in through the listener's target
 * adapters (listener/src/targets/keystore-target.ts, cloud-target.ts), each
 * next to the bare rate measured in the same run:
 * - keystore: KeystoreFile alone writing the same 1,000 entries (clear keys
 *   already in memory) in one put and one commit, the fastest it can;
 * - cloud: the AWS importer called directly with the keys' bytes (the SDK
 *   against the stand-in), as many in flight as the target gets.
 * The target path adds, per key: unwrap under the transit KEK in the token,
 * the KCV there, the read-out (token wrap + in-memory unwrap), and for the
 * keystore one rewrite per batch of what arrived while the previous one ran.
 * The keystore runs as the listener runs it by default: the consumer takes
 * importConcurrency (4) + the keystore's own slots (keystoreImportSlots(),
 * 128 for PKCS#12 at 10,000 iterations) messages at once, the inbox's
 * ImportGates give the keystore its slots, and a rewrite takes at most half
 * of them, so the next batch is read out of the token while one is written.
 * (Before keystores had slots, the 4 shared in flight gave batches of 4 and
 * a ratio of 0.32: listener/src/targets/TRANSIT.md.)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { aesKcv, mapConcurrent, Pkcs11Hsm, type KeyHandle } from '@keyhub/shared';
import { AwsKmsImporter, awsKmsClient } from '@keyhub/listener/dist/targets/cloud/aws/aws-importer';
import { awsKmsSettings } from '@keyhub/listener/dist/targets/cloud/aws/aws-settings';
import { CloudTarget } from '@keyhub/listener/dist/targets/cloud-target';
import { KeystoreFile } from '@keyhub/listener/dist/targets/keystore';
import { KeystoreTarget } from '@keyhub/listener/dist/targets/keystore-target';
import { consumerConcurrency, ImportGates } from '@keyhub/listener/dist/targets/import-slots';
import type { ImportRequest } from '@keyhub/listener/dist/targets/target';
import { TransitKeys } from '@keyhub/listener/dist/targets/transit-keys';
import { SOFTHSM2_WRAP_OPTIONS } from '@keyhub/listener/dist/targets/cloud/byok/hsm-wrap';
import { createSoftHsm } from '../env';
import { AwsKmsStandin } from '../fixtures/cloud/aws-standin';
import type { StageRun } from './context';
import { now, say } from './lib';
import { useSoftHsm } from './softhsm-env';

const KEYS = 1000;
const PASSWORD = 'bench-keystore-password';
/** The listener's default importConcurrency (listener/src/config.ts). */
const IMPORT_CONCURRENCY = 4;
const DEFAULT_ROUNDS = 3;

export async function runTargets({ rec, cleanup }: StageRun): Promise<void> {
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  const soft = await createSoftHsm(['bench-tt-hub', 'bench-tt-site']);
  cleanup.add('SoftHSM tokens', () => soft.cleanup());
  cleanup.add('SOFTHSM2_CONF', useSoftHsm(soft, { BENCH_TT_HUB_PIN: 'bench-tt-hub', BENCH_TT_SITE_PIN: 'bench-tt-site' }));
  const hub = await Pkcs11Hsm.open({ module: soft.modulePath, tokenLabel: 'bench-tt-hub', pinEnv: 'BENCH_TT_HUB_PIN', sessions: 4, translateWorker: false });
  cleanup.add('hub HSM', () => hub.close());
  const site = await Pkcs11Hsm.open({ module: soft.modulePath, tokenLabel: 'bench-tt-site', pinEnv: 'BENCH_TT_SITE_PIN', sessions: 8, translateWorker: false });
  cleanup.add('site HSM', () => site.close());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keyhub-bench-targets-'));
  cleanup.add('temp dir', () => rmSync(dir, { recursive: true, force: true }));

  /** A target's transit KEK, installed as the target-KEK exchange does. */
  async function transit(name: string): Promise<{ keys: TransitKeys; kek: KeyHandle; kekId: string }> {
    const keys = new TransitKeys(site, name);
    const { spki } = await keys.ensureTargetTransportKey(2048);
    const kek = await hub.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const kekId = randomUUID();
    await keys.installTargetKek(await hub.wrapRsaOaep(await hub.importRsaWrappingKey(spki), kek, 'sha1'), 'sha1', kekId, 1, (h) => aesKcv(site, h), await aesKcv(hub, kek));
    return { keys, kek, kekId };
  }

  /** 1,000 packages as the hub makes them, for one target kind. */
  async function packages(t: { kek: KeyHandle; kekId: string }, kind: string, prefix: string): Promise<ImportRequest[]> {
    return mapConcurrent(
      Array.from({ length: KEYS }, (_, i) => i),
      4,
      async (i) => {
        const h = await hub.generateAesKey(32, { token: false, extractable: true, sign: true });
        try {
          return {
            key: {
              id: randomUUID(),
              name: `${prefix}-${i}`,
              version: 1,
              algorithm: 'AES-256',
              length: 32,
              usages: ['encrypt', 'decrypt'],
              exportable: false,
              kcv: await aesKcv(hub, h),
              targetKinds: [kind],
            },
            wrapped: { kekId: t.kekId, kekVersion: 1, mechanism: 'AES-KWP', blob: await hub.wrapKwp(t.kek, h) },
          } satisfies ImportRequest;
        } finally {
          await hub.destroy(h);
        }
      },
    );
  }

  // ---- keystore
  const ksTransit = await transit('bench-ks');
  /** The bare writer: 1,000 entries in one put and one commit into a new file. */
  async function bareKeystore(round: number): Promise<number> {
    const bare = await KeystoreFile.open(path.join(dir, `bare-${round}.p12`), { type: 'pkcs12', password: PASSWORD });
    bare.put(Array.from({ length: KEYS }, (_, i) => ({ kind: 'secretKey' as const, alias: `bare-${i}.v1`, algorithm: 'AES' as const, key: randomBytes(32) })));
    const start = now();
    await bare.commit();
    return KEYS / ((now() - start) / 1000);
  }
  /**
   * One catch-up of 1,000 keys through a fresh keystore target, run as the
   * listener runs it: the consumer takes consumerConcurrency() messages at
   * once and the inbox's ImportGates give the target its slots (the
   * default, keystoreImportSlots()).
   */
  async function catchUp(run: string): Promise<{ inFlight: number; rate: number; commits: number }> {
    const pkgs = await packages(ksTransit, 'keystore', run);
    const target = new KeystoreTarget(`bench-ks-${run}`, ksTransit.keys, {
      type: 'pkcs12',
      path: path.join(dir, `target-${run}.p12`),
      password: () => PASSWORD,
      pkcs12KeyIterations: 10_000,
      pkcs12MacIterations: 10_000,
      jceksIterations: 10_000,
      indexPath: path.join(dir, `target-${run}.json`),
    });
    const gates = new ImportGates(IMPORT_CONCURRENCY);
    const inFlight = consumerConcurrency(IMPORT_CONCURRENCY, [target]);
    let commits = 0;
    const commit = KeystoreFile.prototype.commit;
    KeystoreFile.prototype.commit = function (this: KeystoreFile) {
      commits++;
      return commit.call(this);
    };
    let t0: number;
    try {
      t0 = now();
      await mapConcurrent(pkgs, inFlight, (p) => gates.run(target, () => target.import(p)));
    } finally {
      KeystoreFile.prototype.commit = commit;
    }
    const rate = KEYS / ((now() - t0) / 1000);
    say(`keystore target ${run}: ${target.importSlots} slots (${inFlight} messages in flight), ${rate.toFixed(0)} keys/s in ${commits} rewrites`);
    return { inFlight, rate, commits };
  }
  // The machine is shared, so bare and target runs alternate and each side keeps its best: a slow moment flatters neither.
  const bareRuns = [await bareKeystore(1)];
  const defaultRuns: Array<{ inFlight: number; rate: number; commits: number }> = [];
  for (let round = 1; round <= DEFAULT_ROUNDS; round++) {
    defaultRuns.push(await catchUp(`default-${round}`));
    bareRuns.push(await bareKeystore(round + 1));
  }
  const bareKsRate = Math.max(...bareRuns);
  const best = defaultRuns.reduce((a, b) => (b.rate > a.rate ? b : a));
  say(`bare keystore: ${bareRuns.map((r) => r.toFixed(0)).join(', ')} keys/s`);
  rec.metric(
    'keystore_bare_rate',
    `bare: KeystoreFile writes ${KEYS} AES entries (one put, one commit, PKCS#12, 10,000 iterations), the best of ${bareRuns.length} runs alternating with the target's`,
    bareKsRate,
    'keys/s',
  );
  const label = `catch-up of ${KEYS} keys into a PKCS#12 keystore through the target, as a ratio to the bare writer`;
  rec.goal(
    'keystore_catchup_ratio',
    `${label}: the listener's default (importConcurrency ${IMPORT_CONCURRENCY}, the keystore's own ${best.inFlight - IMPORT_CONCURRENCY} slots), best of ${DEFAULT_ROUNDS}`,
    best.rate / bareKsRate,
    'x',
    '>=',
    0.8,
    {
      digits: 2,
      note: `${defaultRuns.map((r) => `${r.rate.toFixed(0)} keys/s in ${r.commits} rewrites`).join('; ')}; bare ${bareRuns.map((r) => r.toFixed(0)).join(', ')}; 1-min load ${os.loadavg()[0].toFixed(1)}`,
    },
  );
  rec.details.keystore = { bareRuns, defaultRuns, loadAverage: os.loadavg() };
  let t0: number;

  // ---- cloud (AWS KMS stand-in, RSA_AES_KEY_WRAP_SHA_256: the SDK's in-memory wrap for both)
  const aws = new AwsKmsStandin();
  const endpoint = await aws.start();
  cleanup.add('AWS stand-in', () => aws.close());
  const settings = (prefix: string) =>
    awsKmsSettings.parse({
      region: aws.region,
      endpoint,
      aliasPrefix: prefix,
      credentials: { kind: 'static', accessKeyId: aws.accessKeyId, secretAccessKey: 'bench-secret' },
      wrappingKeySpec: 'RSA_2048',
      wrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_256',
      expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
    });
  const concurrency = 4;
  const bareSettings = settings('alias/bare/');
  const bareImporter = new AwsKmsImporter(awsKmsClient(bareSettings), bareSettings);
  t0 = now();
  await mapConcurrent(
    Array.from({ length: KEYS }, (_, i) => i),
    concurrency,
    (i) => bareImporter.importKey({ material: { source: 'bytes', bytes: randomBytes(32) }, algorithm: 'AES-256', keyName: `bare-${i}`, version: 1 }),
  );
  const bareCloudRate = KEYS / ((now() - t0) / 1000);
  rec.metric('cloud_bare_rate', `bare: the AWS SDK imports ${KEYS} AES-256 keys into the stand-in directly (${concurrency} in flight)`, bareCloudRate, 'keys/s');
  say(`bare cloud: ${bareCloudRate.toFixed(0)} keys/s`);
  const cloudTransit = await transit('bench-aws');
  const pkgs = await packages(cloudTransit, 'aws-kms', 'cloud');
  const targetSettings = settings('alias/keyhub/');
  const target = new CloudTarget('bench-aws', 'aws-kms', cloudTransit.keys, new AwsKmsImporter(awsKmsClient(targetSettings), targetSettings), {
    wrapHash: 'sha256',
    hsmWrap: SOFTHSM2_WRAP_OPTIONS,
    indexPath: path.join(dir, 'target-aws.json'),
    probe: async () => undefined,
  });
  t0 = now();
  await mapConcurrent(pkgs, concurrency, (p) => target.import(p));
  const cloudRate = KEYS / ((now() - t0) / 1000);
  say(`cloud target: ${cloudRate.toFixed(0)} keys/s`);
  rec.goal('cloud_catchup_ratio', `catch-up of ${KEYS} keys into the AWS KMS stand-in through the target, as a ratio to the SDK alone`, cloudRate / bareCloudRate, 'x', '>=', 0.8, {
    digits: 2,
    note: `${cloudRate.toFixed(0)} keys/s`,
  });
  rec.details.cloud = { bareCloudRate, cloudRate, concurrency };
}
