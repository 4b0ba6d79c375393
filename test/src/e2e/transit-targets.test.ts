import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { NatsConnection } from 'nats';
import { decodeEnvelope, subjects, type Receipt } from '@keyhub/protocol';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { Deployment } from '../harness/deployment';
import { AwsKmsStandin } from '../fixtures/cloud/aws-standin';
import { compileProbe, keytoolList, runProbe } from '../integration/keystore-support';

const SITE = 'tt-site';
const PASSWORD = 'Keyhub-e2e keystore 1!';

interface TargetRow {
  name: string;
  kek: { scope: string; state: string; kekId: string | null };
}

function immutable(dir: string, on: boolean): void {
  if (process.getuid?.() === 0) execFileSync('chattr', [on ? '+i' : '-i', dir]);
  else fs.chmodSync(dir, on ? 0o500 : 0o700);
}

/**
 * Issue 12, "Java keystores" and "Cloud" end to end: one listener enrolled
 * with its own token, a PKCS#12 keystore and an AWS KMS stand-in as targets
 * (reported with their kinds at enrollment). Each keystore and cloud target
 * gets a transit KEK of its own in the listener's token by the target-KEK
 * exchange (request, operator approval by fingerprint, KCV-confirmed
 * install); keys whose policy allows those kinds are pushed with the real
 * `keyhub` CLI and confirmed by receipts carrying the hub's KCV, which Java
 * (keytool and a javac-compiled reader) and the stand-in's independent
 * unwrap reproduce. Rotation adds the new alias; deactivating the old
 * version removes its entry (a keystore has no usage flags), confirmed by
 * command receipt. A keystore that cannot be written holds the delivery
 * back (redelivered, nothing lost) until it can.
 */
describe('end to end: keys pushed through a listener into a PKCS#12 keystore and an AWS KMS stand-in', function () {
  this.timeout(300_000);
  let d: Deployment;
  const aws = new AwsKmsStandin();
  let ksDir = '';
  let ksFile = '';
  let classpath = '';
  let pg: Client;
  let nc: NatsConnection;
  const receipts: Receipt[] = [];

  before(async () => {
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    const awsUrl = await aws.start();
    d = await Deployment.create([SITE]);
    await d.startHub();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    // The site's signed receipts as they travel (core subscription beside the hub's consumer).
    nc = await d.natsConnect();
    nc.subscribe(subjects.fromListener(SITE, 'receipt'), {
      callback: (_e, m) => {
        const dec = decodeEnvelope(m.data);
        if (dec.ok) receipts.push(dec.envelope.payload as Receipt);
      },
    });
    const site = d.site(SITE);
    ksDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-tt-ks-'));
    ksFile = path.join(ksDir, 'app.p12');
    classpath = compileProbe(fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-tt-java-')));
    const pwFile = path.join(d.dir.path, 'keystore.pw');
    await writeFile(pwFile, PASSWORD, { mode: 0o600 });
    site.env = { ...site.env, KEYHUB_TT_AWS_ID: aws.accessKeyId, KEYHUB_TT_AWS_SECRET: 'test-secret-not-used-for-signing-checks', AWS_EC2_METADATA_DISABLED: 'true' };
    // What `enrollListener` does, with the keystore and cloud targets in the configuration before the enrollment reports them.
    const init = await d.listenerCli(SITE, [
      'init',
      '--id',
      SITE,
      '--nats',
      d.natsUrls.join(','),
      '--hub-fingerprint',
      d.hubFingerprint,
      '--hsm-module',
      d.hsm.modulePath,
      '--token-label',
      site.token.label,
      '--target',
      'hsm',
      ...(await d.listenerNatsArgs(SITE)),
    ]);
    assert.equal(init.code, 0, init.stderr);
    const configFile = path.join(site.home, 'listener.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { targets: unknown[] };
    config.targets.push(
      { name: 'ks', kind: 'keystore', type: 'pkcs12', path: ksFile, password: { file: pwFile }, pkcs12KeyIterations: 2000, pkcs12MacIterations: 2000 },
      {
        name: 'kms',
        kind: 'aws-kms',
        region: aws.region,
        endpoint: awsUrl,
        credentials: { kind: 'static', accessKeyId: { env: 'KEYHUB_TT_AWS_ID' }, secretAccessKey: { env: 'KEYHUB_TT_AWS_SECRET' } },
        wrappingKeySpec: 'RSA_2048',
        wrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_256',
        expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
        retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
      },
    );
    await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
    const enroll = await d.listenerCli(SITE, ['--json', 'enroll']);
    assert.equal(enroll.code, 0, enroll.stdout + enroll.stderr);
    await d.waitForListenerState(SITE, 'pending_approval');
    const approve = await d.keyhub(['listener', 'approve', SITE, '--fingerprint', (JSON.parse(enroll.stdout) as { fingerprint: string }).fingerprint]);
    assert.equal(approve.code, 0, approve.stdout + approve.stderr);
    await d.startListener(SITE);
    await d.waitForListenerState(SITE, 'active');
    // The transit KEKs: requested by the site (transport keys in its own token), approved by fingerprint, installed and confirmed.
    await d.stopListener(SITE);
    for (const t of ['ks', 'kms']) {
      const r = await d.listenerCli(SITE, ['--json', 'target', 'request', t]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const { fingerprint } = JSON.parse(r.stdout) as { fingerprint: string };
      const ok = await d.keyhub(['--json', 'listener', 'target', 'approve', SITE, t, '--fingerprint', fingerprint]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    }
    await d.startListener(SITE);
    await waitFor('both transit KEKs active', async () => {
      const rows = (await d.keyhubJson<{ targets: TargetRow[] }>(['listener', 'target', 'list', SITE])).targets;
      return ['ks', 'kms'].every((t) => rows.find((r) => r.name === t)?.kek.state === 'active') ? true : undefined;
    });
  });

  after(async function () {
    this.timeout(60_000);
    if (ksDir) {
      immutable(ksDir, false);
      fs.rmSync(ksDir, { recursive: true, force: true });
    }
    await aws.close();
    await pg?.end();
    await nc?.close();
    await d?.cleanup();
  });

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${d.site(SITE).process?.output.slice(-2000) ?? ''}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const status = (key: string): Promise<StatusRow[]> => d.keyhubJson<StatusRow[]>(['status', key]);

  it('keys whose policy allows keystores and AWS land in each, confirmed with the hub KCV; Java and the stand-in reproduce it', async () => {
    const created = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'tt-app', '--alg', 'AES-256', '--target-kinds', 'pkcs11,keystore,aws-kms', '--grace', '1h']);
    const mac = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'tt-mac', '--alg', 'HMAC-SHA256', '--target-kinds', 'keystore']);
    for (const [key, to] of [
      ['tt-app', ['ks', 'kms']],
      ['tt-mac', ['ks']],
    ] as const) {
      const r = await d.keyhub(['distribute', key, ...to.flatMap((t) => ['--to', `${SITE}/${t}`]), '--wait', '--timeout', '60']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    assert.deepEqual((await status('tt-app')).map((x) => [x.target, x.state, x.targetKcv]).sort(), [
      ['kms', 'confirmed', created.kcv],
      ['ks', 'confirmed', created.kcv],
    ]);
    assert.deepEqual(
      (await status('tt-mac')).map((x) => [x.target, x.state, x.targetKcv]),
      [['ks', 'confirmed', mac.kcv]],
    );
    assert.deepEqual([...keytoolList('PKCS12', ksFile, PASSWORD)].sort(), [
      ['tt-app.v1', 'SecretKeyEntry'],
      ['tt-mac.v1', 'SecretKeyEntry'],
    ]);
    const probed = runProbe(classpath, 'PKCS12', ksFile, PASSWORD);
    assert.equal(probed.get('tt-app.v1')?.kcv, created.kcv);
    assert.equal(probed.get('tt-mac.v1')?.kcv, mac.kcv);
    assert.equal(await aws.python.aesKcv(aws.material('alias/keyhub/tt-app/v1')!), created.kcv, "the stand-in's Python unwrap gives the hub's KCV");
    // The cloud receipt: the listener's KCV over what it wrapped, and the cloud's key id, version and import state.
    const cloudReceipt = receipts.find((r) => r.target === 'kms' && r.outcome === 'imported');
    assert.ok(cloudReceipt?.cloud, 'the receipt for the cloud target names what the cloud holds');
    assert.equal(cloudReceipt.kcv, created.kcv);
    assert.match(cloudReceipt.cloud.keyId, /^arn:aws:kms:/);
    assert.deepEqual([cloudReceipt.cloud.importState, cloudReceipt.cloud.wrapping], ['Enabled', 'RSA_AES_KEY_WRAP_SHA_256']);
    assert.ok(receipts.filter((r) => r.target === 'ks').every((r) => r.cloud === undefined));
    // An HSM-only key never reaches the keystore: refused at the hub.
    await d.keyhubJson(['key', 'create', 'tt-hsm-only', '--alg', 'AES-256']);
    const refused = await d.keyhub(['--json', 'distribute', 'tt-hsm-only', '--to', `${SITE}/ks`]);
    assert.match(refused.stdout + refused.stderr, /TARGET_KIND_NOT_ALLOWED/);
    assert.ok(!keytoolList('PKCS12', ksFile, PASSWORD).has('tt-hsm-only.v1'));
  });

  it('rotation adds the new alias; deactivating the old version removes its entry, confirmed by command receipt; destroy then finds nothing', async () => {
    const rotated = await d.keyhubJson<{ version: number }>(['key', 'rotate', 'tt-app']);
    assert.equal(rotated.version, 2);
    await waitFor('v2 confirmed at ks and kms', async () => {
      const rows = (await status('tt-app')).filter((x) => x.version === 2 && x.state === 'confirmed');
      return rows.length === 2 ? true : undefined;
    });
    assert.ok(keytoolList('PKCS12', ksFile, PASSWORD).has('tt-app.v2'));
    assert.ok(keytoolList('PKCS12', ksFile, PASSWORD).has('tt-app.v1'));
    const r = await d.keyhub(['key', 'deactivate', 'tt-app', '--version', '1', '--reason', 'rotated']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const commands = async (action: string): Promise<string[]> => {
      const q = await pg.query(
        `SELECT c.target, c.state, c.effect FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
          WHERE k.name = 'tt-app' AND v.version = 1 AND c.action = $1 ORDER BY c.target`,
        [action],
      );
      return q.rows.map((x: { target: string; state: string; effect: string | null }) => `${x.target}:${x.state}:${x.effect ?? ''}`);
    };
    // The keystore entry is removed (effect destroyed); the cloud key version is disabled (usages_off): both confirmed by signed command receipts.
    assert.deepEqual(
      await waitFor('the deactivate confirmed at both targets', async () => {
        const s = await commands('deactivate');
        return s.length === 2 && s.every((x) => x.includes(':confirmed:')) ? s : undefined;
      }),
      ['kms:confirmed:usages_off', 'ks:confirmed:destroyed'],
    );
    assert.ok(!keytoolList('PKCS12', ksFile, PASSWORD).has('tt-app.v1'), 'v1 gone from the keystore');
    assert.equal(aws.state('alias/keyhub/tt-app/v1'), 'Disabled', 'the cloud key version is disabled');
    const destroy = await d.keyhub(['key', 'destroy', 'tt-app', '--version', '1', '--reason', 'end of life']);
    assert.equal(destroy.code, 0, destroy.stdout + destroy.stderr);
    await waitFor('the imported material deleted at the cloud', async () => (aws.material('alias/keyhub/tt-app/v1') === undefined ? true : undefined));
    assert.deepEqual(
      await waitFor('the destroy confirmed', async () => {
        const s = await commands('destroy');
        // The keystore's copy was recorded gone by the deactivate: the destroy goes to the cloud only.
        return s.length >= 1 && s.every((x) => x.includes(':confirmed:')) ? s : undefined;
      }),
      ['kms:confirmed:destroyed'],
    );
    const listed = keytoolList('PKCS12', ksFile, PASSWORD);
    assert.ok(!listed.has('tt-app.v1') && listed.has('tt-app.v2'));
    assert.equal(runProbe(classpath, 'PKCS12', ksFile, PASSWORD).get('tt-app.v2')?.kcv, (await status('tt-app')).find((x) => x.version === 2)?.targetKcv);
  });

  it('a keystore that cannot be written holds the delivery back (KEYSTORE_NOT_WRITABLE, redelivered, nothing lost); once it can, the key is confirmed', async () => {
    const created = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'tt-late', '--alg', 'AES-128', '--target-kinds', 'keystore']);
    const proc = d.site(SITE).process!;
    immutable(ksDir, true);
    try {
      const r = await d.keyhub(['distribute', 'tt-late', '--to', `${SITE}/ks`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await proc.waitFor(/KEYSTORE_NOT_WRITABLE/);
      assert.notEqual((await status('tt-late'))[0]?.state, 'confirmed');
    } finally {
      immutable(ksDir, false);
    }
    await waitFor('tt-late confirmed', async () => ((await status('tt-late'))[0]?.state === 'confirmed' ? true : undefined));
    assert.equal((await status('tt-late'))[0].targetKcv, created.kcv);
    assert.equal(runProbe(classpath, 'PKCS12', ksFile, PASSWORD).get('tt-late.v1')?.kcv, created.kcv);
  });

  it('a wrong keystore password fails the delivery with KEYSTORE_WRONG_PASSWORD and leaves the file alone; with the password put right, the key is delivered again and confirmed', async () => {
    const created = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'tt-pw', '--alg', 'AES-256', '--target-kinds', 'keystore']);
    const pwFile = path.join(d.dir.path, 'keystore.pw');
    await d.stopListener(SITE);
    await writeFile(pwFile, 'not the keystore password', { mode: 0o600 });
    const before = fs.readFileSync(ksFile);
    try {
      await d.startListener(SITE);
      const r = await d.keyhub(['distribute', 'tt-pw', '--to', `${SITE}/ks`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const failed = await waitFor('tt-pw failed', async () => {
        const [row] = await status('tt-pw');
        return row?.state === 'failed' ? row : undefined;
      });
      assert.equal(failed.errorCode, 'KEYSTORE_WRONG_PASSWORD');
      assert.deepEqual(fs.readFileSync(ksFile), before, 'the keystore is left as it was');
    } finally {
      await writeFile(pwFile, PASSWORD, { mode: 0o600 });
    }
    // Put right at the site: the operator's distribute queues it again, and it is confirmed (the target reads the password at each open).
    const again = await d.keyhub(['distribute', 'tt-pw', '--to', `${SITE}/ks`, '--wait', '--timeout', '60']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const [row] = await status('tt-pw');
    assert.deepEqual([row.state, row.targetKcv], ['confirmed', created.kcv]);
    assert.equal(runProbe(classpath, 'PKCS12', ksFile, PASSWORD).get('tt-pw.v1')?.kcv, created.kcv);
  });

  it('a cloud answering 5xx past its retries holds the delivery back (CLOUD_UNAVAILABLE, redelivered); once it answers, the key is confirmed', async () => {
    const created = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'tt-outage', '--alg', 'AES-256', '--target-kinds', 'aws-kms']);
    const proc = d.site(SITE).process!;
    aws.faults.serverErrors = 1_000_000;
    try {
      const r = await d.keyhub(['distribute', 'tt-outage', '--to', `${SITE}/kms`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await proc.waitFor(/CLOUD_UNAVAILABLE/);
      assert.notEqual((await status('tt-outage'))[0]?.state, 'confirmed');
    } finally {
      aws.faults.serverErrors = 0;
    }
    await waitFor('tt-outage confirmed', async () => ((await status('tt-outage'))[0]?.state === 'confirmed' ? true : undefined));
    assert.equal((await status('tt-outage'))[0].targetKcv, created.kcv);
    assert.equal(await aws.python.aesKcv(aws.material('alias/keyhub/tt-outage/v1')!), created.kcv);
  });

  it('no keystore password, cloud secret or key material appears in any output', async () => {
    const outputs = (d.hub?.output ?? '') + (d.site(SITE).process?.output ?? '');
    assert.ok(outputs.length > 0);
    for (const secret of [PASSWORD, 'test-secret-not-used-for-signing-checks']) assert.ok(!outputs.includes(secret));
    assert.ok(!(await readFile(path.join(d.site(SITE).home, 'listener.json'), 'utf8')).includes(PASSWORD));
  });
});
