import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { api } from '@keyhub/protocol';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { Deployment } from '../harness/deployment';
import { AwsKmsStandin } from '../fixtures/cloud/aws-standin';
import { keytoolList } from '../integration/keystore-support';

const SITE = 'inv-site';
const PASSWORD = 'Keyhub-inventory keystore 1!';

interface TargetRow {
  name: string;
  kek: { state: string };
  inventory: { items: number };
}

/**
 * Issue 12, "the hub sees each target, its health and its inventory", for
 * targets that are not PKCS#11 tokens: a listener with its own token, a
 * PKCS#12 keystore and an AWS KMS stand-in reports every 3 s a signed
 * inventory that includes what the keystore file and the cloud hold (each
 * target's inventory(), with the KCV verified at import). The hub's
 * per-target counts show them, drift finds nothing after delivery nor after
 * a deactivate (keystore entry removed, cloud version disabled), and an
 * entry deleted from the keystore with Java's keytool behind the listener's
 * back is a `missing` finding in `keyhub status --drift`, re-pushed by the
 * hub and back in the file.
 */
describe('end to end: keystore and cloud targets in the signed inventory and drift', function () {
  this.timeout(300_000);
  let d: Deployment;
  const aws = new AwsKmsStandin();
  let ksDir = '';
  let ksFile = '';
  let pg: Client;

  before(async () => {
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    const awsUrl = await aws.start();
    d = await Deployment.create([SITE]);
    await d.startHub();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    const site = d.site(SITE);
    ksDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyhub-inv-ks-'));
    ksFile = path.join(ksDir, 'app.p12');
    const pwFile = path.join(d.dir.path, 'keystore.pw');
    await writeFile(pwFile, PASSWORD, { mode: 0o600 });
    site.env = { ...site.env, KEYHUB_INV_AWS_ID: aws.accessKeyId, KEYHUB_INV_AWS_SECRET: 'inventory-test-secret', AWS_EC2_METADATA_DISABLED: 'true' };
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
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { targets: unknown[]; inventorySeconds?: number };
    config.inventorySeconds = 3;
    config.targets.push(
      { name: 'ks', kind: 'keystore', type: 'pkcs12', path: ksFile, password: { file: pwFile }, pkcs12KeyIterations: 2000, pkcs12MacIterations: 2000 },
      {
        name: 'kms',
        kind: 'aws-kms',
        region: aws.region,
        endpoint: awsUrl,
        credentials: { kind: 'static', accessKeyId: { env: 'KEYHUB_INV_AWS_ID' }, secretAccessKey: { env: 'KEYHUB_INV_AWS_SECRET' } },
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
      const rows = await targetRows();
      return ['ks', 'kms'].every((t) => rows.find((r) => r.name === t)?.kek.state === 'active') ? true : undefined;
    });
  });

  after(async function () {
    this.timeout(60_000);
    if (ksDir) fs.rmSync(ksDir, { recursive: true, force: true });
    await aws.close();
    await pg?.end();
    await d?.cleanup();
  });

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${d.hub?.output.slice(-1500) ?? ''}\n${d.site(SITE).process?.output.slice(-1500) ?? ''}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const targetRows = async (): Promise<TargetRow[]> => (await d.keyhubJson<{ targets: TargetRow[] }>(['listener', 'target', 'list', SITE])).targets;
  const counts = async (): Promise<Record<string, number>> => Object.fromEntries((await targetRows()).map((t) => [t.name, t.inventory?.items ?? 0]));
  const drift = (): Promise<api.DriftReport> => d.keyhubJson<api.DriftReport>(['status', '--drift']);
  const siteFindings = async () => (await drift()).findings.filter((f) => f.listenerId === SITE);
  const takenAt = async (): Promise<number> => (await pg.query<{ taken_at: Date }>('SELECT taken_at FROM listener_inventories WHERE listener_id = $1', [SITE])).rows[0]?.taken_at.getTime() ?? 0;
  /** An inventory taken after `since` has been recorded (and scanned: the scan runs when the report completes). */
  const inventoryAfter = (what: string, since: number) => waitFor(what, async () => ((await takenAt()) > since ? true : undefined));
  const status = (key: string): Promise<StatusRow[]> => d.keyhubJson<StatusRow[]>(['status', key]);

  it("keys delivered to the keystore and the cloud show in the hub's per-target counts with the KCV verified at import, and no drift", async () => {
    const a = await d.keyhubJson<{ kcv: string; id: string }>(['key', 'create', 'inv-a', '--alg', 'AES-256', '--target-kinds', 'keystore,aws-kms']);
    const b = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'inv-b', '--alg', 'AES-256', '--target-kinds', 'keystore,aws-kms']);
    for (const key of ['inv-a', 'inv-b']) {
      const r = await d.keyhub(['distribute', key, '--to', `${SITE}/ks`, '--to', `${SITE}/kms`, '--wait', '--timeout', '60']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    assert.deepEqual([...keytoolList('PKCS12', ksFile, PASSWORD).keys()].sort(), ['inv-a.v1', 'inv-b.v1']);
    const delivered = Math.max(...[...(await status('inv-a')), ...(await status('inv-b'))].map((r) => Date.parse(String(r.confirmedAt))));
    await inventoryAfter('an inventory taken after the deliveries', delivered);
    assert.deepEqual(await counts(), { hsm: 0, ks: 2, kms: 2 });
    assert.deepEqual(await siteFindings(), []);
    // What the hub holds: each version at each target with the KCV the listener verified at import (the hub's).
    const rows = await pg.query<{ target: string; label: string; kcv: string | null; state: string }>(
      `SELECT i.target, i.label, i.kcv, i.state FROM inventory_items i JOIN listener_inventories li ON li.report_id = i.report_id AND li.listener_id = i.listener_id
        WHERE i.listener_id = $1 AND i.key_id = $2 ORDER BY i.target`,
      [SITE, a.id],
    );
    assert.deepEqual(
      rows.rows.map((r) => [r.target, r.kcv, r.state]),
      [
        ['kms', a.kcv, 'active'],
        ['ks', a.kcv, 'active'],
      ],
    );
    assert.equal(rows.rows.find((r) => r.target === 'ks')?.label, 'inv-a.v1');
    assert.notEqual(a.kcv, b.kcv);
  });

  it('deactivate removes the keystore entry and disables the cloud version: the counts follow, and neither reads as drift', async () => {
    const r = await d.keyhub(['key', 'deactivate', 'inv-b', '--version', '1', '--reason', 'retired']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const confirmed = await waitFor('the deactivate confirmed at both targets', async () => {
      const q = await pg.query<{ target: string; effect: string | null; answered_at: Date | null }>(
        `SELECT c.target, c.effect, c.answered_at FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
          WHERE k.name = 'inv-b' AND c.action = 'deactivate' AND c.state = 'confirmed' ORDER BY c.target`,
      );
      return q.rows.length === 2 ? q.rows : undefined;
    });
    assert.deepEqual(
      confirmed.map((c) => [c.target, c.effect]),
      [
        ['kms', 'usages_off'],
        ['ks', 'destroyed'],
      ],
    );
    assert.ok(!keytoolList('PKCS12', ksFile, PASSWORD).has('inv-b.v1'));
    await inventoryAfter('an inventory taken after the deactivate', Math.max(...confirmed.map((c) => c.answered_at!.getTime())));
    assert.deepEqual(await counts(), { hsm: 0, ks: 1, kms: 2 }, 'the disabled cloud version is still held (disabled)');
    assert.deepEqual(await siteFindings(), []);
  });

  it('a keystore that cannot be read is left out of the report (not reported empty): none of its keys reads as missing', async () => {
    const good = fs.readFileSync(ksFile);
    const since = Date.now();
    fs.writeFileSync(ksFile, Buffer.from('not a keystore at all'), { mode: 0o600 });
    try {
      await inventoryAfter('an inventory taken with the keystore unreadable', since);
      const row = await waitFor('an inventory without ks', async () => {
        const r = (await pg.query<{ targets: string[]; taken_at: Date }>('SELECT targets, taken_at FROM listener_inventories WHERE listener_id = $1', [SITE])).rows[0];
        return r && r.taken_at.getTime() > since && !r.targets.includes('ks') ? r : undefined;
      });
      assert.deepEqual([...row.targets].sort(), ['hsm', 'kms'], 'the cloud and the token were read');
      assert.deepEqual(await siteFindings(), [], 'inv-a at ks is not called missing');
    } finally {
      fs.writeFileSync(ksFile, good, { mode: 0o600 });
    }
    const restored = Date.now();
    await waitFor('an inventory with ks again', async () => {
      const r = (await pg.query<{ targets: string[]; taken_at: Date }>('SELECT targets, taken_at FROM listener_inventories WHERE listener_id = $1', [SITE])).rows[0];
      return r && r.taken_at.getTime() > restored && r.targets.includes('ks') ? true : undefined;
    });
    assert.deepEqual(await counts(), { hsm: 0, ks: 1, kms: 2 });
    assert.deepEqual(await siteFindings(), []);
  });

  it("an entry deleted from the keystore with keytool behind the listener's back is `missing` in `keyhub status --drift`, re-pushed and back", async () => {
    const before = (await status('inv-a')).find((x) => x.target === 'ks')!;
    execFileSync('keytool', ['-delete', '-alias', 'inv-a.v1', '-storetype', 'PKCS12', '-keystore', ksFile, '-storepass', PASSWORD], { stdio: 'pipe' });
    assert.ok(!keytoolList('PKCS12', ksFile, PASSWORD).has('inv-a.v1'), 'keytool deleted the entry');
    const missing = await waitFor('a missing finding for inv-a at ks', async () =>
      (await siteFindings()).find((f) => f.kind === 'missing' && f.target === 'ks' && f.label === null && f.version === 1 && f.expectedState === 'active'),
    );
    assert.equal(missing.expectedKcv, before.targetKcv);
    assert.ok(!(await siteFindings()).some((f) => f.target === 'kms'), 'the cloud copy is not touched');
    // Healing: the confirmed distribution is pushed again and the entry is back, read by Java.
    await waitFor('inv-a.v1 back in the keystore', async () => (keytoolList('PKCS12', ksFile, PASSWORD).has('inv-a.v1') ? true : undefined));
    const again = await waitFor('confirmed again', async () => (await status('inv-a')).find((x) => x.target === 'ks' && x.state === 'confirmed' && x.confirmedAt !== before.confirmedAt));
    const back = Date.parse(String(again.confirmedAt));
    await inventoryAfter('an inventory taken after the re-push', back);
    await waitFor('the finding resolved', async () => ((await siteFindings()).length === 0 ? true : undefined)).catch(async (err: Error) => {
      throw new Error(`${err.message}\nfindings: ${JSON.stringify(await siteFindings())}`);
    });
    assert.deepEqual(await counts(), { hsm: 0, ks: 1, kms: 2 }, 'inv-a back in the keystore (inv-b stays removed)');
  });

  it('no keystore password or cloud secret appears in any output', () => {
    const outputs = (d.hub?.output ?? '') + (d.site(SITE).process?.output ?? '');
    assert.ok(outputs.length > 0);
    for (const secret of [PASSWORD, 'inventory-test-secret']) assert.ok(!outputs.includes(secret));
  });
});
