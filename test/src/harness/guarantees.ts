import { strict as assert } from 'node:assert';
import { Client as PgClient, type Client } from 'pg';
import { pkcs11Tool } from '../env';
import { Deployment } from './deployment';

/**
 * Checks shared by the fault and scale-out suites: push a batch of keys named
 * `<prefix>-NNNNN`, then prove that every distribution was confirmed exactly
 * once, that each target token holds one object per key version (counted
 * with pkcs11-tool) and that the audit chain verifies.
 */
export class Guarantees {
  constructor(
    private readonly d: Deployment,
    private readonly pg: Client,
  ) {}

  async createKeys(prefix: string, count: number): Promise<void> {
    const r = await this.d.keyhub(['key', 'create', prefix, '--alg', 'AES-128', '--count', String(count)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }

  /** One distribute call for the whole batch; returns how many distributions it queued. */
  async push(prefix: string, to: string[] | 'all'): Promise<number> {
    const dest = to === 'all' ? ['--to-all'] : to.flatMap((l) => ['--to', l]);
    const r = await this.d.keyhub(['--json', 'distribute', '--key-prefix', `${prefix}-`, ...dest]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { queued: unknown[] }).queued.length;
  }

  async states(prefix: string): Promise<Record<string, number>> {
    const r = await this.pg.query(
      `SELECT d.state, count(*)::int AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name LIKE $1 GROUP BY d.state`,
      [`${prefix}-%`],
    );
    return Object.fromEntries(r.rows.map((x: { state: string; n: number }) => [x.state, x.n]));
  }

  async waitFor(prefix: string, predicate: (s: Record<string, number>) => boolean, what: string, timeoutMs: number): Promise<Record<string, number>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.states(prefix).catch(() => ({}) as Record<string, number>);
      if (predicate(s)) return s;
      if (Date.now() > deadline) throw new Error(`${prefix}: ${what} not reached in ${timeoutMs} ms; states ${JSON.stringify(s)}\nhub: ${this.d.hub?.output.slice(-1500) ?? '(not running)'}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  waitConfirmed(prefix: string, atLeast: number, timeoutMs = 60_000): Promise<Record<string, number>> {
    return this.waitFor(prefix, (s) => (s.confirmed ?? 0) >= atLeast, `${atLeast} confirmed`, timeoutMs);
  }

  async assertAll(prefix: string, keys: number, listeners: string[], timeoutMs = 120_000): Promise<void> {
    const total = keys * listeners.length;
    const s = await this.waitFor(prefix, (x) => (x.confirmed ?? 0) + (x.failed ?? 0) === total, `all ${total} settled`, timeoutMs);
    assert.deepEqual(s, { confirmed: total }, 'every distribution is confirmed');

    const once = await this.pg.query(
      `SELECT d.id, coalesce(c.n, 0)::int AS n
         FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
         LEFT JOIN (SELECT subject, count(*) AS n FROM audit_events WHERE action = 'distribution.confirmed' GROUP BY subject) c
           ON c.subject = 'distribution:' || d.id::text
        WHERE k.name LIKE $1`,
      [`${prefix}-%`],
    );
    assert.equal(once.rows.length, total);
    assert.deepEqual(
      once.rows.filter((r: { n: number }) => r.n !== 1),
      [],
      'each distribution is confirmed exactly once',
    );

    for (const id of listeners) {
      const token = this.d.site(id).token;
      const r = await pkcs11Tool(this.d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
      assert.equal(r.code, 0, r.stderr);
      const labels = [...r.stdout.matchAll(/label:\s+(\S+)/g)].map((m) => m[1]).filter((l) => l.startsWith(`${prefix}-`));
      assert.equal(labels.length, keys, `${id} holds one object per key version (found ${labels.length} of ${keys})`);
      assert.equal(new Set(labels).size, keys, `${id} holds no duplicate`);
    }

    const audit = await this.d.keyhub(['audit', 'verify', '--fingerprint', this.d.hubFingerprint], { as: 'auditor' });
    assert.equal(audit.code, 0, audit.stdout + audit.stderr);
  }
}

export interface FaultRig {
  d: Deployment;
  pg: Client;
  g: Guarantees;
  close(): Promise<void>;
}

/**
 * A deployment for fault and scale-out runs: hub (plus `replicas` more),
 * enrolled listeners, short re-send timers so that lost packages would show.
 */
export async function startFaultRig(listeners: string[], options: { natsCluster?: boolean; replicas?: number } = {}): Promise<FaultRig> {
  const d = await Deployment.create(listeners, { natsCluster: options.natsCluster, delivery: { resendAfterSeconds: 3, onlineWindowSeconds: 30 } });
  try {
    await d.initHub();
    await d.startHub();
    for (let i = 0; i < (options.replicas ?? 0); i++) await d.startReplica();
    for (const id of listeners) await d.enrollListener(id);
    const pg = new PgClient({ connectionString: d.db.url });
    await pg.connect();
    return {
      d,
      pg,
      g: new Guarantees(d, pg),
      close: async () => {
        await pg.end().catch(() => undefined);
        await d.cleanup();
      },
    };
  } catch (err) {
    await d.cleanup();
    throw err;
  }
}
