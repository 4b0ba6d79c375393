import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import type { api } from '@keyhub/protocol';
import { Deployment } from '../harness/deployment';

/**
 * The scheduler as shipped: two real `keyhub serve` processes on one
 * database and hub token, with `keyLifecycle.intervalMs` from the config
 * file, and keys made through the real `keyhub` CLI. Each scheduled
 * activation and deactivation happens once (one audit event), on time.
 */
describe('key lifecycle with two `keyhub serve` replicas: scheduled transitions once each, on time', function () {
  this.timeout(180_000);
  let d: Deployment;
  let pg: Client;

  before(async () => {
    d = await Deployment.create([]);
    const config = JSON.parse(await readFile(d.hubConfigPath, 'utf8')) as Record<string, unknown>;
    await writeFile(d.hubConfigPath, JSON.stringify({ ...config, keyLifecycle: { intervalMs: 1_000 } }));
    await d.startHub();
    await d.startReplica();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    await pg?.end();
    await d?.cleanup();
  });

  it('activates at the date and deactivates after the cryptoperiod, each key once, within 3 s', async () => {
    const N = 10;
    const activateAt = new Date(Date.now() + 3_000);
    const created = await d.keyhub(['--json', 'key', 'create', 'serve/k', '--alg', 'AES-256', '--count', String(N), '--activate-at', activateAt.toISOString(), '--cryptoperiod', '3s']);
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const shown = await d.keyhubJson<api.KeyDetail>(['key', 'show', 'serve/k-00001']);
    assert.equal(shown.versions[0].state, 'pre-activation');

    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM keys WHERE name LIKE 'serve/k-%' AND state = 'deactivated'`);
      if (rows[0].n === N) break;
      if (Date.now() > deadline) throw new Error(`only ${rows[0].n} of ${N} keys deactivated; hub output:\n${d.hub?.output.slice(-2000) ?? ''}`);
      await sleep(200);
    }
    const { rows: events } = await pg.query<{ subject: string; to: string; n: number; at: Date }>(
      `SELECT subject, details->>'to' AS to, count(*)::int AS n, min(at) AS at FROM audit_events
        WHERE action = 'key.state_changed' AND subject LIKE 'key:serve/k-%' GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    assert.equal(events.length, 2 * N, 'an activation and a deactivation per key');
    for (const e of events) {
      assert.equal(e.n, 1, `${e.subject} -> ${e.to}: one audit event`);
      const due = activateAt.getTime() + (e.to === 'deactivated' ? 3_000 : 0);
      const late = e.at.getTime() - due;
      assert.ok(late >= 0 && late <= 3_000, `${e.subject} -> ${e.to} ${late} ms after its date`);
    }
    const { rows: actors } = await pg.query<{ actor: string }>(`SELECT DISTINCT actor FROM audit_events WHERE action = 'key.state_changed' AND subject LIKE 'key:serve/k-%'`);
    assert.deepEqual(
      actors.map((a) => a.actor),
      ['system:scheduler'],
    );
  });
});
