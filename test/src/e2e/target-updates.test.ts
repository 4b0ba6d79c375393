import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { Deployment } from '../harness/deployment';

const SITE = 'tu-site';

interface TargetRow {
  name: string;
  kind: string;
  approval: string;
  health: { healthy: boolean | null; detail: string | null; at: string | null };
  inventory: { items: number };
  update: { id: string; op: string; kind: string; settings: Record<string, string> } | null;
}

/**
 * Issue 12, "a target added or removed later is a signed update that an
 * operator approves", end to end: the hub server, NATS, PostgreSQL, SoftHSM2
 * and a real listener process. The site adds a second PKCS#11 target to its
 * configuration (its own token, another label prefix) and sends the signed
 * update with `keyhub-listener target add`; the hub holds it, refuses pushes
 * to it, shows it with the settings the site sent; once an operator approves
 * that update the target receives keys (receipt with the hub's KCV) and its
 * health from the listener's heartbeats is shown. Removed the same way, it
 * receives nothing more.
 */
describe('end to end: a target added and removed by signed update, approved by an operator', function () {
  this.timeout(300_000);
  let d: Deployment;

  before(async () => {
    d = await Deployment.create([SITE]);
    await d.startHub();
    await d.enrollListener(SITE);
    await d.stopListener(SITE);
    const configFile = path.join(d.site(SITE).home, 'listener.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { targets: unknown[]; heartbeatSeconds?: number };
    config.targets.push({ name: 'hsm-b', kind: 'pkcs11', labelPrefix: 'b-' });
    config.heartbeatSeconds = 1;
    await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
  });

  after(async function () {
    this.timeout(60_000);
    await d?.cleanup();
  });

  const targets = async (): Promise<TargetRow[]> => (await d.keyhubJson<{ targets: TargetRow[] }>(['listener', 'target', 'list', SITE])).targets;
  const target = async (name: string): Promise<TargetRow | undefined> => (await targets()).find((t) => t.name === name);

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('an added target is refused until its update is approved, then receives keys and reports its health', async () => {
    const sent = await d.listenerCli(SITE, ['--json', 'target', 'add', 'hsm-b', '--setting', 'purpose=payments']);
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    const pending = await waitFor('the update at the hub', async () => {
      const t = await target('hsm-b');
      return t?.update ? t : undefined;
    });
    assert.equal(pending.approval, 'pending_add');
    assert.equal(pending.kind, 'pkcs11');
    assert.deepEqual([pending.update?.op, pending.update?.settings.labelPrefix, pending.update?.settings.purpose], ['add', 'b-', 'payments']);
    // No PIN, module secret or credential in what the site sent.
    assert.doesNotMatch(JSON.stringify(pending.update?.settings), /pin|password|secret/i);

    const created = await d.keyhubJson<{ kcv: string }>(['key', 'create', 'tu-key', '--alg', 'AES-256']);
    const refused = await d.keyhub(['--json', 'distribute', 'tu-key', '--to', `${SITE}/hsm-b`]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /TARGET_NOT_APPROVED/);

    const approved = await d.keyhubJson<{ op: string; kind: string }>(['listener', 'target', 'approve-update', SITE, 'hsm-b', '--update', pending.update!.id]);
    assert.deepEqual([approved.op, approved.kind], ['add', 'pkcs11']);
    assert.equal((await target('hsm-b'))?.approval, 'approved');

    await d.startListener(SITE);
    const r = await d.keyhub(['distribute', 'tu-key', '--to', `${SITE}/hsm-b`, '--wait', '--timeout', '60']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rows = await d.keyhubJson<StatusRow[]>(['status', 'tu-key']);
    assert.deepEqual(
      rows.map((x) => [x.target, x.state, x.targetKcv]),
      [['hsm-b', 'confirmed', created.kcv]],
    );
    // The listener's heartbeats name the new target; the hub shows its health and when it heard it.
    const healthy = await waitFor('hsm-b health at the hub', async () => {
      const t = await target('hsm-b');
      return t?.health.healthy === true ? t : undefined;
    });
    assert.ok(healthy.health.at && Date.parse(healthy.health.at) > Date.now() - 120_000);
    const table = await d.keyhub(['listener', 'target', 'list', SITE]);
    assert.match(table.stdout, /hsm-b\s+pkcs11\s+approved\s+ok/);
  });

  it('a removal, once approved, retires the target: pushes to it are refused', async () => {
    const sent = await d.listenerCli(SITE, ['--json', 'target', 'remove', 'hsm-b']);
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    const pending = await waitFor('the removal at the hub', async () => {
      const t = await target('hsm-b');
      return t?.approval === 'pending_remove' ? t : undefined;
    });
    const done = await d.keyhubJson<{ op: string }>(['listener', 'target', 'approve-update', SITE, 'hsm-b', '--update', pending.update!.id]);
    assert.equal(done.op, 'remove');
    assert.equal(await target('hsm-b'), undefined);
    await d.keyhubJson(['key', 'create', 'tu-key-2', '--alg', 'AES-256']);
    const refused = await d.keyhub(['--json', 'distribute', 'tu-key-2', '--to', `${SITE}/hsm-b`]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /TARGET_NOT_APPROVED/);
    // The site's own token still receives.
    const ok = await d.keyhub(['distribute', 'tu-key-2', '--to', SITE, '--wait', '--timeout', '60']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.deepEqual(
      (await d.keyhubJson<StatusRow[]>(['status', 'tu-key-2'])).map((x) => [x.target, x.state]),
      [['hsm', 'confirmed']],
    );
  });
});
