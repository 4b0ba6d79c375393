import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DataSource } from 'typeorm';
import { sealAuditWith } from '@keyhub/hub/dist/audit/audit-seal';
import { HubContext } from '@keyhub/hub/dist/context';
import { signKeyCommandsWith } from '@keyhub/hub/dist/operations/commands/command-signer';
import { RotateKey } from '@keyhub/hub/dist/operations/keys/rotate-key';
import { RunKeySchedule, type ScheduleRun } from '@keyhub/hub/dist/operations/keys/run-key-schedule';
import { KeyLifecycleJob } from '@keyhub/hub/dist/scheduler/jobs/key-lifecycle-job';
import { Scheduler } from '@keyhub/hub/dist/scheduler/scheduler';
import { connectDataSource } from '@keyhub/hub/dist/store/data-source';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';

/**
 * Scheduled transitions with two hub replicas against one PostgreSQL: each
 * replica has its own data source (connection pool), audit sealer and
 * command signer, as two `keyhub serve` processes would, and runs the real
 * Scheduler with the real KeyLifecycleJob every second, both at once (and,
 * in the first case, also both at the same instant, over and over). Every
 * activation, deactivation and rotation must happen exactly once (one audit
 * event, counted by the replicas as done once in total) and within a
 * bounded delay of its due date.
 */

const INTERVAL_MS = 1_000;
/** Due date to transition: one interval, plus the run itself and the other replica's turn at the audit lock. */
const MAX_DELAY_MS = 2 * INTERVAL_MS + 1_000;

/** RunKeySchedule that keeps what each of its runs did. */
class CountedSchedule extends RunKeySchedule {
  readonly runs: ScheduleRun[] = [];
  override async execute(limit?: number): Promise<ScheduleRun> {
    const r = await super.execute(limit);
    this.runs.push(r);
    return r;
  }
  total(k: keyof ScheduleRun): number {
    return this.runs.reduce((n, r) => n + r[k], 0);
  }
}

describe('key lifecycle scheduler: two hub replicas, each transition exactly once and on time', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  const [L1] = listenerIds(1, 'sched');
  let h: ApiHub;
  const replicas: CountedSchedule[] = [];
  const failures: string[] = [];
  const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> => h.fx.rt.ds.query(text, params);
  const call = (method: string, path: string, body?: unknown): Promise<ApiResponse> => h.call(method, path, { token: h.tokens.get('ko'), body });

  before(async () => {
    h = await createApiHub(cleanup);
    await insertActiveListeners(h.fx, [L1]);
    await h.operator('ko', ['key-officer']);
    const { config, keyring, logger } = h.fx;
    // Replica B: a second pool, sealer and signer on the same database and hub token.
    const ds2: DataSource = await connectDataSource(config.databaseUrl, 4);
    cleanup.add('replica B data source', () => ds2.destroy());
    sealAuditWith(ds2, async () => keyring);
    signKeyCommandsWith(ds2, async () => keyring);
    const contexts = [h.fx.rt.container.resolve(HubContext), new HubContext(ds2, keyring, config, logger)];
    for (const [i, ctx] of contexts.entries()) {
      const schedule = new CountedSchedule(ctx, new RotateKey(ctx));
      replicas.push(schedule);
      const scheduler = new Scheduler(logger, (job) => failures.push(`replica ${i}: ${job}`));
      // Registered before the data sources close (cleanup runs in reverse).
      cleanup.add(`replica ${i} scheduler`, () => scheduler.stop());
      scheduler.add(new KeyLifecycleJob(schedule, INTERVAL_MS, logger));
    }
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  /** (key, version, to) -> number of key.state_changed events, for keys with this prefix. */
  async function transitionEvents(prefix: string): Promise<Array<{ key: string; version: number; to: string; n: number; at: Date }>> {
    return sql(
      `SELECT subject AS key, (details->>'version')::int AS version, details->>'to' AS to, count(*)::int AS n, min(at) AS at FROM audit_events
        WHERE action = 'key.state_changed' AND subject LIKE $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      [`key:${prefix}%`],
    );
  }

  it('activates at the activation date and deactivates at the end of the cryptoperiod, each version once, within the bound', async () => {
    const N = 20;
    const activateAt = new Date(Date.now() + 2_000);
    const r = await call('POST', '/v1/keys', { name: 'sched/a', algorithm: 'AES-256', count: N, activateAt: activateAt.toISOString(), cryptoperiodSeconds: 3 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const [{ n: pre }] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name LIKE 'sched/a-%' AND v.state = 'pre-activation'`);
    assert.equal(pre, N, 'created in pre-activation');

    await waitFor('every version deactivated', 20_000, async () => {
      // Besides their schedulers' ticks, both replicas run at the very same moment, again and again: the race the claims must win.
      await Promise.all(replicas.map((r) => r.execute()));
      const [{ n }] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name LIKE 'sched/a-%' AND v.state = 'deactivated'`);
      return n === N;
    });
    const events = await transitionEvents('sched/a-');
    assert.equal(events.length, 2 * N, 'one (key, version, to) row per transition');
    for (const e of events) assert.equal(e.n, 1, `${e.key} v${e.version} -> ${e.to}: exactly one audit event`);
    const versions = await sql<{ name: string; activate_at: Date; deactivate_at: Date; activated: Date; deactivated: Date }>(
      `SELECT k.name, v.activate_at, v.deactivate_at,
              (SELECT at FROM audit_events a WHERE a.action = 'key.state_changed' AND a.subject = 'key:' || k.name AND a.details->>'to' = 'active') AS activated,
              (SELECT at FROM audit_events a WHERE a.action = 'key.state_changed' AND a.subject = 'key:' || k.name AND a.details->>'to' = 'deactivated') AS deactivated
         FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name LIKE 'sched/a-%'`,
    );
    for (const v of versions) {
      const late = v.activated.getTime() - activateAt.getTime();
      assert.ok(late >= 0 && late <= MAX_DELAY_MS, `${v.name} activated ${late} ms after its date`);
      const lateEnd = v.deactivated.getTime() - (activateAt.getTime() + 3_000);
      assert.ok(lateEnd >= 0 && lateEnd <= MAX_DELAY_MS, `${v.name} deactivated ${lateEnd} ms after the end of its cryptoperiod`);
      assert.equal(v.deactivate_at.getTime(), v.activate_at.getTime() + 3_000, 'deactivation = activation + cryptoperiod');
    }
    // What the replicas report doing adds up to exactly the transitions: none was done twice.
    assert.equal(replicas[0].total('activated') + replicas[1].total('activated'), N);
    assert.ok(replicas[0].total('deactivated') + replicas[1].total('deactivated') >= N);
    assert.ok(
      replicas.every((r) => r.runs.length > 0),
      'both replicas ran',
    );
    assert.deepEqual(failures, []);
  });

  it('rotates automatically when the interval has passed: one new version per due key, sent to the holders; the old one deactivated after the grace period', async () => {
    const keys = ['sched/r1', 'sched/r2', 'sched/r3'];
    for (const name of keys) {
      const r = await call('POST', '/v1/keys', { name, algorithm: 'AES-256', rotateEverySeconds: 2, graceSeconds: 1 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const d = await call('POST', '/v1/distributions', { keys: keys.map((name) => ({ name })), to: [{ listenerId: L1 }] });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    const rotatedBefore = replicas[0].total('rotated') + replicas[1].total('rotated');
    await waitFor('version 2 of every key', 15_000, async () => {
      const [{ n }] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM keys WHERE name LIKE 'sched/r%' AND current_version >= 2`);
      return n === keys.length;
    });
    // Stop further rotations, then let the grace period run out.
    await sql(`UPDATE keys SET rotate_every_seconds = NULL WHERE name LIKE 'sched/r%'`);
    await sleep(3 * INTERVAL_MS);
    await waitFor('version 1 of every key deactivated', 10_000, async () => {
      const [{ n }] = await sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name LIKE 'sched/r%' AND v.version = 1 AND v.state = 'deactivated'`,
      );
      return n === keys.length;
    });

    const rotations = await sql<{ key: string; version: number; n: number }>(
      `SELECT subject AS key, (details->>'version')::int AS version, count(*)::int AS n FROM audit_events WHERE action = 'key.rotated' AND subject LIKE 'key:sched/r%' GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    for (const r of rotations) assert.equal(r.n, 1, `${r.key} v${r.version}: one rotation event`);
    const rotatedNow = replicas[0].total('rotated') + replicas[1].total('rotated');
    assert.equal(rotatedNow - rotatedBefore, rotations.length, 'the replicas together made exactly as many versions as were audited');
    const perKey = await sql<{ name: string; versions: number; current: number }>(
      `SELECT k.name, count(v.id)::int AS versions, k.current_version AS current FROM keys k JOIN key_versions v ON v.key_id = k.id WHERE k.name LIKE 'sched/r%' GROUP BY k.name, k.current_version ORDER BY k.name`,
    );
    for (const k of perKey) assert.equal(k.versions, k.current, `${k.name}: versions 1..${k.current}, none twice`);
    // Every version after the first was queued to the one holder, once.
    const queued = await sql<{ name: string; version: number; n: number }>(
      `SELECT k.name, v.version, count(d.id)::int AS n FROM key_versions v JOIN keys k ON k.id = v.key_id LEFT JOIN distributions d ON d.key_version_id = v.id AND d.listener_id = $1
        WHERE k.name LIKE 'sched/r%' GROUP BY 1, 2 ORDER BY 1, 2`,
      [L1],
    );
    for (const q of queued) assert.equal(q.n, 1, `${q.name} v${q.version} queued to ${L1} once`);
    const commands = await sql<{ name: string; n: number }>(
      `SELECT k.name, count(*)::int AS n FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name LIKE 'sched/r%' AND v.version = 1 AND c.action = 'deactivate' GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(
      commands.map((c) => [c.name, c.n]),
      keys.map((k) => [k, 1]),
      'one deactivate command per old version to its site',
    );
    const events = await transitionEvents('sched/r');
    for (const e of events) assert.equal(e.n, 1, `${e.key} v${e.version} -> ${e.to}: exactly one audit event`);
    assert.deepEqual(failures, []);
  });
});
