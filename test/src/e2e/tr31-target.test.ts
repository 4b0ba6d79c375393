import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Client } from 'pg';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { Deployment } from '../harness/deployment';
import { startPaymentHsm, type PaymentHsmStandin } from '../fixtures/payment-hsm/payment-hsm-standin';

const SITE = 't31-site';

interface TargetRow {
  name: string;
  kind?: string;
  kek: { scope: string; state: string; kekId: string | null };
}

/**
 * Issue 12, "TR-31" end to end: one listener enrolled with its own token and
 * a payment-HSM stand-in as a `tr31` target (reported with its kind at
 * enrollment). The target gets a transit KEK by the target-KEK exchange;
 * keys whose policy allows `tr31` are pushed with the real `keyhub` CLI and
 * arrive as TR-31 blocks the stand-in opens with Python's `cryptography`,
 * with the hub's KCV in the receipt and in the stand-in, and the policy in
 * the header. The stand-in down holds the delivery back (TARGET_UNAVAILABLE,
 * redelivered) until it is back; destroy removes the key, confirmed by
 * command receipt.
 */
describe('end to end: keys pushed through a listener to a payment HSM as TR-31 key blocks', function () {
  this.timeout(300_000);
  let d: Deployment;
  let phsm: PaymentHsmStandin;
  let pg: Client;

  before(async () => {
    phsm = await startPaymentHsm();
    d = await Deployment.create([SITE]);
    await d.startHub();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    const site = d.site(SITE);
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
    config.targets.push({ name: 'pay', kind: 'tr31', endpoint: phsm.url, version: 'D', transportKeyFingerprint: createHash('sha256').update(phsm.spki).digest('hex'), timeoutMs: 3000 });
    await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
    const enroll = await d.listenerCli(SITE, ['--json', 'enroll']);
    assert.equal(enroll.code, 0, enroll.stdout + enroll.stderr);
    await d.waitForListenerState(SITE, 'pending_approval');
    const approve = await d.keyhub(['listener', 'approve', SITE, '--fingerprint', (JSON.parse(enroll.stdout) as { fingerprint: string }).fingerprint]);
    assert.equal(approve.code, 0, approve.stdout + approve.stderr);
    await d.startListener(SITE);
    await d.waitForListenerState(SITE, 'active');
    await d.stopListener(SITE);
    const r = await d.listenerCli(SITE, ['--json', 'target', 'request', 'pay']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { fingerprint } = JSON.parse(r.stdout) as { fingerprint: string };
    const ok = await d.keyhub(['--json', 'listener', 'target', 'approve', SITE, 'pay', '--fingerprint', fingerprint]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    await d.startListener(SITE);
    await waitFor('the transit KEK of pay active', async () => {
      const rows = (await d.keyhubJson<{ targets: TargetRow[] }>(['listener', 'target', 'list', SITE])).targets;
      return rows.find((x) => x.name === 'pay')?.kek.state === 'active' ? true : undefined;
    });
  });

  after(async function () {
    this.timeout(60_000);
    await phsm?.close();
    await pg?.end();
    await d?.cleanup();
  });

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${d.site(SITE).process?.output.slice(-2000) ?? ''}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  const status = (key: string): Promise<StatusRow[]> => d.keyhubJson<StatusRow[]>(['status', key]);
  const heldBy = (kcv: string) => [...phsm.keys.values()].find((k) => k.kcv === kcv);

  it('AES-256 and TDES keys whose policy allows tr31 are confirmed with the hub KCV, which the payment HSM reproduces, with the policy in the header', async () => {
    const aes = await d.keyhubJson<{ kcv: string }>(['key', 'create', 't31-pin', '--alg', 'AES-256', '--usage', 'encrypt', 'decrypt', '--target-kinds', 'pkcs11,tr31']);
    const tdes = await d.keyhubJson<{ kcv: string }>(['key', 'create', 't31-zmk', '--alg', 'TDES-3KEY', '--usage', 'wrap', 'unwrap', '--exportable', '--target-kinds', 'tr31']);
    for (const key of ['t31-pin', 't31-zmk']) {
      const r = await d.keyhub(['distribute', key, '--to', `${SITE}/pay`, '--wait', '--timeout', '60']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    assert.deepEqual(
      (await status('t31-pin')).map((x) => [x.target, x.state, x.targetKcv]),
      [['pay', 'confirmed', aes.kcv]],
    );
    assert.deepEqual(
      (await status('t31-zmk')).map((x) => [x.target, x.state, x.targetKcv]),
      [['pay', 'confirmed', tdes.kcv]],
    );
    const a = heldBy(aes.kcv)!;
    assert.ok(a, 'the payment HSM opened a key with the hub KCV');
    assert.deepEqual([a.header.version, a.header.keyUsage, a.header.algorithm, a.header.modeOfUse, a.header.exportability], ['D', 'D0', 'A', 'B', 'N']);
    const t = heldBy(tdes.kcv)!;
    assert.ok(t);
    assert.deepEqual([t.header.keyUsage, t.header.algorithm, t.header.modeOfUse, t.header.exportability], ['K0', 'T', 'B', 'E']);
    assert.equal(phsm.kbpks.size, 1, 'one KBPK established');
    // An HSM-only key never reaches the payment HSM: refused at the hub.
    await d.keyhubJson(['key', 'create', 't31-hsm-only', '--alg', 'AES-256']);
    const refused = await d.keyhub(['--json', 'distribute', 't31-hsm-only', '--to', `${SITE}/pay`]);
    assert.match(refused.stdout + refused.stderr, /TARGET_KIND_NOT_ALLOWED/);
  });

  it('the payment HSM down holds the delivery back (TARGET_UNAVAILABLE, redelivered, nothing lost); once back, the key is confirmed', async () => {
    const created = await d.keyhubJson<{ kcv: string }>(['key', 'create', 't31-late', '--alg', 'AES-128', '--target-kinds', 'tr31']);
    const proc = d.site(SITE).process!;
    await phsm.stop();
    try {
      const r = await d.keyhub(['distribute', 't31-late', '--to', `${SITE}/pay`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await proc.waitFor(/TARGET_UNAVAILABLE/);
      assert.notEqual((await status('t31-late'))[0]?.state, 'confirmed');
    } finally {
      await phsm.start();
    }
    await waitFor('t31-late confirmed', async () => ((await status('t31-late'))[0]?.state === 'confirmed' ? true : undefined));
    assert.equal((await status('t31-late'))[0].targetKcv, created.kcv);
    assert.ok(heldBy(created.kcv));
  });

  it('deactivate removes the key from the payment HSM (no usage flags there), confirmed by command receipt; destroy then has nothing to remove', async () => {
    const kcv = (await status('t31-pin'))[0].targetKcv!;
    assert.ok(heldBy(kcv));
    const commands = async (action: string): Promise<string[]> => {
      const q = await pg.query(
        `SELECT c.target, c.state, c.effect FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
          WHERE k.name = 't31-pin' AND v.version = 1 AND c.action = $1 ORDER BY c.target`,
        [action],
      );
      return q.rows.map((x: { target: string; state: string; effect: string | null }) => `${x.target}:${x.state}:${x.effect ?? ''}`);
    };
    const r = await d.keyhub(['key', 'deactivate', 't31-pin', '--version', '1', '--reason', 'retired']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(
      await waitFor('the deactivate confirmed', async () => {
        const s = await commands('deactivate');
        return s.length === 1 && s[0].includes(':confirmed:') ? s : undefined;
      }),
      ['pay:confirmed:destroyed'],
    );
    assert.equal(heldBy(kcv), undefined, 'the key is gone from the payment HSM');
    assert.ok(phsm.requests.some((x) => x.startsWith('DELETE /keys/')));
    const destroy = await d.keyhub(['key', 'destroy', 't31-pin', '--version', '1', '--reason', 'end of life']);
    assert.equal(destroy.code, 0, destroy.stdout + destroy.stderr);
    assert.equal(heldBy(kcv), undefined);
  });

  it('no key or KBPK bytes appear in any output', () => {
    const outputs = (d.hub?.output ?? '') + (d.site(SITE).process?.output ?? '');
    assert.ok(outputs.length > 0);
    for (const secret of [...[...phsm.keys.values()].map((k) => k.keyHex), ...[...phsm.kbpks.values()].map((k) => k.key.toString('hex'))]) {
      assert.ok(!outputs.toLowerCase().includes(secret.toLowerCase()));
    }
  });
});
