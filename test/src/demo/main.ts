/**
 * The demo behind `npm run demo`: a complete local Keyhub from real parts
 * (its own nats-server with JetStream, SoftHSM2 tokens for the hub and two
 * listeners, a fresh PostgreSQL database), two listeners enrolled with
 * fingerprint approval, two keys pushed to both, then the status, each
 * site's inventory and the audit verification. Everything it starts is
 * removed at the end (KEYHUB_DEMO_KEEP=1 keeps it running until Ctrl-C).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { AwsKmsStandin } from '../fixtures/cloud/aws-standin';
import { Deployment } from '../harness/deployment';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function show(title: string, text: string): void {
  say(`\n== ${title}`);
  say(text.trimEnd());
}

/** Two approvers, a 2-of-2 policy on sensitive keys, and a push that runs only once both approved. */
async function demoDualControl(d: Deployment): Promise<void> {
  await d.createOperator('alice', ['approver']);
  await d.createOperator('bob', ['approver']);
  const policy = await d.keyhub(['policy', 'set', 'distribution.sensitive', '--required', '2', '--enable'], { as: 'admin' });
  show('keyhub policy set distribution.sensitive --required 2 --enable (as admin)', policy.stdout + policy.stderr);
  await d.keyhub(['key', 'create', 'master-pin-key', '--alg', 'AES-256', '--sensitive']);
  // The key officer asks and waits; the push runs only once two approvers have approved the exact request.
  // To the sites' own tokens: a dual-control request over --to-all still counts targets its policy does not allow (keystore, cloud).
  const waiting = d.keyhub(['distribute', 'master-pin-key', '--to', 'site-a/hsm', '--to', 'site-b/hsm', '--wait', '--timeout', '120']);
  let request: { id: string; hash: string; summary: string } | undefined;
  for (let i = 0; i < 100 && !request; i++) {
    const list = await d.keyhub(['--json', 'approvals', 'list', '--state', 'pending'], { as: 'alice' });
    request = (JSON.parse(list.stdout) as Array<{ id: string; hash: string; summary: string }>)[0];
    if (!request) await new Promise((r) => setTimeout(r, 200));
  }
  if (!request) throw new Error('no approval request appeared');
  show('keyhub approvals list --state pending (as alice)', `request ${request.id}: ${request.summary}\nhash ${request.hash}`);
  for (const approver of ['alice', 'bob']) {
    const r = await d.keyhub(['approvals', 'approve', request.id, '--hash', request.hash], { as: approver });
    show(`keyhub approvals approve ${request.id} --hash ... (as ${approver})`, r.stdout + r.stderr);
    if (r.code !== 0) throw new Error(`approve exited ${r.code}`);
  }
  const done = await waiting;
  show('keyhub distribute master-pin-key --to site-a/hsm --to site-b/hsm --wait (the key officer, meanwhile)', done.stdout + done.stderr);
  if (done.code !== 0) throw new Error(`distribute exited ${done.code}`);
}

/**
 * Issue 12: site-b also delivers into a PKCS#12 keystore and into an AWS KMS
 * stand-in (local; it unwraps what it receives with Python's `cryptography`).
 * Both targets are in site-b's configuration when it enrolls (so the hub
 * knows their kinds); each gets a transit KEK of its own in site-b's token,
 * approved by fingerprint; a key whose policy allows keystores and AWS goes
 * to both, and Java's keytool and the stand-in show what arrived.
 */
async function enrollWithKeystoreAndCloud(d: Deployment, id: string, aws: AwsKmsStandin, awsUrl: string, keystore: string): Promise<string> {
  const site = d.site(id);
  const pwFile = path.join(d.dir.path, `${id}-keystore.pw`);
  await writeFile(pwFile, DEMO_KEYSTORE_PASSWORD, { mode: 0o600 });
  site.env = { ...site.env, DEMO_AWS_ACCESS_KEY_ID: aws.accessKeyId, DEMO_AWS_SECRET: 'demo-secret-for-the-local-stand-in', AWS_EC2_METADATA_DISABLED: 'true' };
  const init = await d.listenerCli(id, [
    'init',
    '--id',
    id,
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
    ...(await d.listenerNatsArgs(id)),
  ]);
  if (init.code !== 0) throw new Error(`listener init failed: ${init.stderr}`);
  const configFile = path.join(site.home, 'listener.json');
  const config = JSON.parse(await readFile(configFile, 'utf8')) as { targets: unknown[] };
  config.targets.push(
    { name: 'app-keystore', kind: 'keystore', type: 'pkcs12', path: keystore, password: { file: pwFile } },
    {
      name: 'aws',
      kind: 'aws-kms',
      region: aws.region,
      endpoint: awsUrl,
      credentials: { kind: 'static', accessKeyId: { env: 'DEMO_AWS_ACCESS_KEY_ID' }, secretAccessKey: { env: 'DEMO_AWS_SECRET' } },
      wrappingKeySpec: 'RSA_2048',
      expiration: { model: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
    },
  );
  await writeFile(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
  const enroll = await d.listenerCli(id, ['--json', 'enroll']);
  if (enroll.code !== 0) throw new Error(`listener enroll failed: ${enroll.stdout}${enroll.stderr}`);
  const { fingerprint } = JSON.parse(enroll.stdout) as { fingerprint: string };
  await d.waitForListenerState(id, 'pending_approval');
  const approve = await d.keyhub(['listener', 'approve', id, '--fingerprint', fingerprint]);
  if (approve.code !== 0) throw new Error(`approve failed: ${approve.stdout}${approve.stderr}`);
  await d.startListener(id);
  await d.waitForListenerState(id, 'active');
  await d.stopListener(id);
  for (const t of ['app-keystore', 'aws']) {
    const r = await d.listenerCli(id, ['--json', 'target', 'request', t]);
    if (r.code !== 0) throw new Error(`target request ${t} failed: ${r.stdout}${r.stderr}`);
    const fp = (JSON.parse(r.stdout) as { fingerprint: string }).fingerprint;
    const ok = await d.keyhub(['listener', 'target', 'approve', id, t, '--fingerprint', fp]);
    show(`keyhub-listener target request ${t}, then keyhub listener target approve ${id} ${t} --fingerprint ${fp}`, ok.stdout + ok.stderr);
    if (ok.code !== 0) throw new Error(`target approve ${t} failed`);
  }
  await d.startListener(id);
  for (let i = 0; i < 150; i++) {
    const rows = (JSON.parse((await d.keyhub(['--json', 'listener', 'target', 'list', id])).stdout) as { targets: Array<{ name: string; kek: { state: string } }> }).targets;
    if (['app-keystore', 'aws'].every((t) => rows.find((r) => r.name === t)?.kek.state === 'active')) return fingerprint;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the transit KEKs of app-keystore and aws did not become active');
}

const DEMO_KEYSTORE_PASSWORD = 'Demo keystore password 1!';

async function demoKeystoreAndCloud(d: Deployment, aws: AwsKmsStandin, keystore: string): Promise<void> {
  const create = await d.keyhub(['key', 'create', 'app-data-key', '--alg', 'AES-256', '--target-kinds', 'pkcs11,keystore,aws-kms']);
  show('keyhub key create app-data-key --alg AES-256 --target-kinds pkcs11,keystore,aws-kms', create.stdout + create.stderr);
  if (create.code !== 0) throw new Error(`key create exited ${create.code}`);
  const r = await d.keyhub(['distribute', 'app-data-key', '--to', 'site-b/app-keystore', '--to', 'site-b/aws', '--wait', '--timeout', '60']);
  show('keyhub distribute app-data-key --to site-b/app-keystore --to site-b/aws --wait', r.stdout + r.stderr);
  if (r.code !== 0) throw new Error(`distribute exited ${r.code}`);
  let listed: string | undefined;
  try {
    listed = execFileSync('keytool', ['-list', '-storetype', 'PKCS12', '-keystore', keystore, '-storepass', DEMO_KEYSTORE_PASSWORD], { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    // The JDK is installed for the tests only (prepare.sh --tests): without it, the listener's own view of its targets.
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  if (listed) show(`keytool -list -storetype PKCS12 -keystore ${keystore} (Java's own tool)`, listed);
  else show('keyhub-listener inventory (site-b; keytool is not installed here)', (await d.listenerCli('site-b', ['inventory'])).stdout);
  const material = aws.material('alias/keyhub/app-data-key/v1');
  if (!material) throw new Error('the AWS stand-in holds no material for app-data-key');
  show(
    'AWS KMS stand-in: alias/keyhub/app-data-key/v1',
    `state ${aws.state('alias/keyhub/app-data-key/v1')}; KCV of the material it unwrapped (Python cryptography): ${await aws.python.aesKcv(material)}`,
  );
}

async function main(): Promise<void> {
  say('Starting nats-server (JetStream), SoftHSM2 tokens (hub, site-a, site-b) and a fresh PostgreSQL database...');
  const d = await Deployment.create(['site-a', 'site-b']);
  const aws = new AwsKmsStandin();
  const awsUrl = await aws.start();
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  const keystoreDir = mkdtempSync(path.join(os.tmpdir(), 'keyhub-demo-keystore-'));
  const keystore = path.join(keystoreDir, 'app-keys.p12');
  let failed = false;
  try {
    const fp = await d.initHub();
    show('keyhub init', `hub fingerprint (listeners pin this): ${fp}\nhub CA certificate (clients pin this): ${d.caCertPath}\nfirst admin's token written to an owner-only file`);
    await d.startHub();
    say(`keyhub serve: running, API on ${d.apiAddr}`);
    show('keyhub operator list (as admin; the key officer and the auditor were created through the API)', (await d.keyhub(['operator', 'list'], { as: 'admin' })).stdout);
    for (const id of ['site-a', 'site-b']) {
      const listenerFp = id === 'site-b' ? await enrollWithKeystoreAndCloud(d, id, aws, awsUrl, keystore) : await d.enrollListener(id);
      show(
        `enrollment of ${id}`,
        [
          `keyhub listener register ${id} (key officer): a bootstrap NATS credential that can only send this enrollment`,
          `keyhub-listener enroll: identity and transport keys in ${id}'s token, its own NATS key; fingerprint ${listenerFp}`,
          `keyhub listener approve ${id} --fingerprint ... (key officer, after comparing it out of band)`,
          `root KEK installed in ${id}'s token and confirmed by KCV; ${id} now connects to NATS as itself, the bootstrap is revoked`,
        ].join('\n'),
      );
    }
    for (const [name, alg] of [
      ['payments-zmk', 'AES-256'],
      ['tokenization-key', 'AES-128'],
    ]) {
      const r = await d.keyhub(['key', 'create', name, '--alg', alg]);
      show(`keyhub key create ${name} --alg ${alg}`, r.stdout + r.stderr);
      if (r.code !== 0) throw new Error(`key create exited ${r.code}`);
    }
    for (const name of ['payments-zmk', 'tokenization-key']) {
      const r = await d.keyhub(['distribute', name, '--to-all', '--wait', '--timeout', '60']);
      show(`keyhub distribute ${name} --to-all --wait`, r.stdout + r.stderr);
      if (r.code !== 0) throw new Error(`distribute exited ${r.code}`);
    }
    await demoDualControl(d);
    await demoKeystoreAndCloud(d, aws, keystore);
    show('keyhub status', (await d.keyhub(['status'])).stdout);
    show('keyhub listener list', (await d.keyhub(['listener', 'list'])).stdout);
    for (const id of ['site-a', 'site-b']) show(`keyhub-listener inventory (${id})`, (await d.listenerCli(id, ['inventory'])).stdout);
    const audit = await d.keyhub(['audit', 'verify', '--fingerprint', fp], { as: 'auditor' });
    show('keyhub audit verify', audit.stdout + audit.stderr);
    if (audit.code !== 0) throw new Error('audit verification failed');
    say('\nDemo complete: keys generated in the hub HSM arrived wrapped in both site tokens, in a PKCS#12 keystore and in a cloud KMS stand-in, confirmed by KCV, audit chain intact.');
    if (process.env.KEYHUB_DEMO_KEEP === '1') {
      say(`Keeping everything running. Hub config: ${d.hubConfigPath}. Press Ctrl-C to stop and clean up.`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } catch (err) {
    failed = true;
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    if (d.hub) process.stderr.write(`--- hub output (tail) ---\n${d.hub.output.slice(-3000)}\n`);
  } finally {
    await d.cleanup();
    await aws.close();
    rmSync(keystoreDir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

void main();
