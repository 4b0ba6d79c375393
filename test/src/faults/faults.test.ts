import { strict as assert } from 'node:assert';
import { Client } from 'pg';
import { pkcs11Tool } from '../env';
import { Deployment } from '../harness/deployment';

/**
 * Fault suite: real processes, real faults. Each scenario pushes a fresh batch
 * of keys, breaks something while the push is in flight, and then checks the
 * guarantees: every distribution ends confirmed, confirmed exactly once (one
 * audit event each), each target token holds exactly one object per key
 * version (counted with pkcs11-tool), and the audit chain verifies.
 */
describe('fault suite: no key lost, duplicated or unaccounted for', function () {
  this.timeout(600_000);
  const LISTENERS = ['f1', 'f2', 'f3'];
  let d: Deployment;
  let pg: Client;

  before(async () => {
    d = await Deployment.create(LISTENERS, { delivery: { resendAfterSeconds: 3, onlineWindowSeconds: 30 } });
    await d.initHub();
    await d.startHub();
    for (const id of LISTENERS) await d.enrollListener(id);
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    await pg?.end().catch(() => undefined);
    await d?.cleanup();
  });

  async function createKeys(prefix: string, count: number): Promise<void> {
    const r = await d.keyhub(['key', 'create', prefix, '--alg', 'AES-128', '--count', String(count)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }

  async function push(prefix: string, to: string[] | 'all'): Promise<number> {
    const dest = to === 'all' ? ['--to-all'] : to.flatMap((l) => ['--to', l]);
    const r = await d.keyhub(['--json', 'distribute', '--key-prefix', `${prefix}-`, ...dest]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { queued: unknown[] }).queued.length;
  }

  async function states(prefix: string): Promise<Record<string, number>> {
    const r = await pg.query(
      `SELECT d.state, count(*)::int AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name LIKE $1 GROUP BY d.state`,
      [`${prefix}-%`],
    );
    return Object.fromEntries(r.rows.map((x: { state: string; n: number }) => [x.state, x.n]));
  }

  async function waitFor(prefix: string, predicate: (s: Record<string, number>) => boolean, what: string, timeoutMs: number): Promise<Record<string, number>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await states(prefix).catch(() => ({}) as Record<string, number>);
      if (predicate(s)) return s;
      if (Date.now() > deadline) throw new Error(`${prefix}: ${what} not reached in ${timeoutMs} ms; states ${JSON.stringify(s)}\nhub: ${d.hub?.output.slice(-1500) ?? '(not running)'}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const confirmedAtLeast = (n: number) => (s: Record<string, number>) => (s.confirmed ?? 0) >= n;

  async function assertGuarantees(prefix: string, keys: number, listeners: string[], timeoutMs = 120_000): Promise<void> {
    const total = keys * listeners.length;
    const s = await waitFor(prefix, (x) => (x.confirmed ?? 0) + (x.failed ?? 0) === total, `all ${total} settled`, timeoutMs);
    assert.deepEqual(s, { confirmed: total }, 'every distribution is confirmed');

    const once = await pg.query(
      `SELECT d.id, (SELECT count(*) FROM audit_events a WHERE a.subject = 'distribution:' || d.id AND a.action = 'distribution.confirmed')::int AS n
         FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name LIKE $1`,
      [`${prefix}-%`],
    );
    assert.equal(once.rows.length, total);
    assert.deepEqual(once.rows.filter((r: { n: number }) => r.n !== 1), [], 'each distribution is confirmed exactly once');

    for (const id of listeners) {
      const token = d.site(id).token;
      const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
      assert.equal(r.code, 0, r.stderr);
      const labels = [...r.stdout.matchAll(/label:\s+(\S+)/g)].map((m) => m[1]).filter((l) => l.startsWith(`${prefix}-`));
      assert.equal(labels.length, keys, `${id} holds one object per key version (found ${labels.length} of ${keys})`);
      assert.equal(new Set(labels).size, keys, `${id} holds no duplicate`);
    }

    const audit = await d.keyhub(['audit', 'verify']);
    assert.equal(audit.code, 0, audit.stdout + audit.stderr);
  }

  it('kill -9 of the hub in the middle of a push', async () => {
    await createKeys('crash-hub', 334);
    assert.equal(await push('crash-hub', 'all'), 1002);
    await waitFor('crash-hub', confirmedAtLeast(100), '100 confirmed', 60_000);
    await d.stopHub('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    await d.startHub();
    await assertGuarantees('crash-hub', 334, LISTENERS);
  });

  it('nats-server restarted in the middle of a push', async () => {
    await createKeys('nats-restart', 334);
    await push('nats-restart', 'all');
    await waitFor('nats-restart', confirmedAtLeast(100), '100 confirmed', 60_000);
    await d.nats.restart();
    await assertGuarantees('nats-restart', 334, LISTENERS);
  });

  it("the hub's PostgreSQL connections terminated in the middle of a push", async () => {
    await createKeys('pg-kill', 334);
    await push('pg-kill', 'all');
    await waitFor('pg-kill', confirmedAtLeast(100), '100 confirmed', 60_000);
    const killed = await pg.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'keyhub%'`,
    );
    assert.ok(killed.rows.length >= 1, 'the hub had connections to terminate');
    await assertGuarantees('pg-kill', 334, LISTENERS);
  });

  it('kill -9 of a listener in the middle of an import', async () => {
    await createKeys('crash-listener', 334);
    await push('crash-listener', 'all');
    await waitFor('crash-listener', confirmedAtLeast(60), 'imports under way', 60_000);
    await d.stopListener('f1', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    await d.startListener('f1');
    await assertGuarantees('crash-listener', 334, LISTENERS);
  });

  it('a listener offline while 10,000 packages queue catches up when it starts', async () => {
    await d.stopListener('f3');
    await createKeys('backlog', 10_000);
    assert.equal(await push('backlog', ['f3']), 10_000);
    await waitFor('backlog', (s) => (s.sent ?? 0) === 10_000, 'all 10,000 published', 120_000);
    await d.startListener('f3');
    await assertGuarantees('backlog', 10_000, ['f3'], 420_000);
  });
});
