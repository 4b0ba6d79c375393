import { strict as assert } from 'node:assert';
import type { Client } from 'pg';
import type { Deployment } from '../harness/deployment';
import { startFaultRig, type FaultRig, type Guarantees } from '../harness/guarantees';

/**
 * Fault suite: real processes, real faults. Each scenario pushes a fresh batch
 * of keys, breaks something while the push is in flight, then checks that
 * nothing was lost, duplicated or left unaccounted for.
 */
describe('fault suite: no key lost, duplicated or unaccounted for', function () {
  this.timeout(600_000);
  const LISTENERS = ['f1', 'f2', 'f3'];
  let d: Deployment;
  let pg: Client;
  let g: Guarantees;
  let rig: FaultRig | undefined;

  before(async () => {
    rig = await startFaultRig(LISTENERS);
    ({ d, pg, g } = rig);
  });

  after(async () => {
    await rig?.close();
  });

  it('kill -9 of the hub in the middle of a push', async () => {
    await g.createKeys('crash-hub', 334);
    assert.equal(await g.push('crash-hub', 'all'), 1002);
    await g.waitConfirmed('crash-hub', 100);
    await d.stopHub('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    await d.startHub();
    await g.assertAll('crash-hub', 334, LISTENERS);
  });

  it('nats-server restarted in the middle of a push', async () => {
    await g.createKeys('nats-restart', 334);
    await g.push('nats-restart', 'all');
    await g.waitConfirmed('nats-restart', 100);
    await d.nats.restart();
    await g.assertAll('nats-restart', 334, LISTENERS);
  });

  it("the hub's PostgreSQL connections terminated in the middle of a push", async () => {
    await g.createKeys('pg-kill', 334);
    await g.push('pg-kill', 'all');
    await g.waitConfirmed('pg-kill', 100);
    const killed = await pg.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'keyhub%'`);
    assert.ok(killed.rows.length >= 1, 'the hub had connections to terminate');
    await g.assertAll('pg-kill', 334, LISTENERS);
  });

  it('kill -9 of a listener in the middle of an import', async () => {
    await g.createKeys('crash-listener', 334);
    await g.push('crash-listener', 'all');
    await g.waitConfirmed('crash-listener', 60);
    await d.stopListener('f1', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    await d.startListener('f1');
    await g.assertAll('crash-listener', 334, LISTENERS);
  });

  it('a listener offline while 10,000 packages queue catches up when it starts', async () => {
    await d.stopListener('f3');
    await g.createKeys('backlog', 10_000);
    assert.equal(await g.push('backlog', ['f3']), 10_000);
    await g.waitFor('backlog', (s) => (s.sent ?? 0) === 10_000, 'all 10,000 published', 120_000);
    await d.startListener('f3');
    await g.assertAll('backlog', 10_000, ['f3'], 420_000);
  });
});
