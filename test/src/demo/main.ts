/**
 * The demo behind `npm run demo`: a complete local Keyhub from real parts
 * (its own nats-server with JetStream, SoftHSM2 tokens for the hub and two
 * listeners, a fresh PostgreSQL database), two listeners enrolled with
 * fingerprint approval, two keys pushed to both, then the status, each
 * site's inventory and the audit verification. Everything it starts is
 * removed at the end (KEYHUB_DEMO_KEEP=1 keeps it running until Ctrl-C).
 */
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
  const waiting = d.keyhub(['distribute', 'master-pin-key', '--to-all', '--wait', '--timeout', '120']);
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
  show('keyhub distribute master-pin-key --to-all --wait (the key officer, meanwhile)', done.stdout + done.stderr);
  if (done.code !== 0) throw new Error(`distribute exited ${done.code}`);
}

async function main(): Promise<void> {
  say('Starting nats-server (JetStream), SoftHSM2 tokens (hub, site-a, site-b) and a fresh PostgreSQL database...');
  const d = await Deployment.create(['site-a', 'site-b']);
  let failed = false;
  try {
    const fp = await d.initHub();
    show('keyhub init', `hub fingerprint (listeners pin this): ${fp}\nhub CA certificate (clients pin this): ${d.caCertPath}\nfirst admin's token written to an owner-only file`);
    await d.startHub();
    say(`keyhub serve: running, API on ${d.apiAddr}`);
    show('keyhub operator list (as admin; the key officer and the auditor were created through the API)', (await d.keyhub(['operator', 'list'], { as: 'admin' })).stdout);
    for (const id of ['site-a', 'site-b']) {
      const listenerFp = await d.enrollListener(id);
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
    show('keyhub status', (await d.keyhub(['status'])).stdout);
    show('keyhub listener list', (await d.keyhub(['listener', 'list'])).stdout);
    for (const id of ['site-a', 'site-b']) show(`keyhub-listener inventory (${id})`, (await d.listenerCli(id, ['inventory'])).stdout);
    const audit = await d.keyhub(['audit', 'verify', '--fingerprint', fp], { as: 'auditor' });
    show('keyhub audit verify', audit.stdout + audit.stderr);
    if (audit.code !== 0) throw new Error('audit verification failed');
    say('\nDemo complete: keys generated in the hub HSM arrived wrapped in both site tokens, confirmed by KCV, audit chain intact.');
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
  }
  process.exit(failed ? 1 : 0);
}

void main();
