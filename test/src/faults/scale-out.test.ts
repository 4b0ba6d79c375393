import { strict as assert } from 'node:assert';
import type { NatsConnection } from 'nats';
import type { Client } from 'pg';
import { decodeEnvelope, MESSAGE_TYPES, subjects, type Receipt } from '@keyhub/protocol';
import type { Deployment } from '../harness/deployment';
import { startFaultRig, type FaultRig, type Guarantees } from '../harness/guarantees';

/** Receipts as the listeners send them: each is one package a listener received and handled. */
function countReceipts(nc: NatsConnection, listenerIds: string[]): Receipt[] {
  const seen: Receipt[] = [];
  for (const id of listenerIds) {
    nc.subscribe(subjects.fromListener(id, 'receipt'), {
      callback: (_e, m) => {
        const dec = decodeEnvelope(m.data);
        if (dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.receipt) seen.push(dec.envelope.payload as Receipt);
      },
    });
  }
  return seen;
}

describe('scale-out: two hub replicas', function () {
  this.timeout(300_000);
  const LISTENERS = ['r1', 'r2', 'r3'];
  let d: Deployment;
  let pg: Client;
  let g: Guarantees;
  let nc: NatsConnection;
  let rig: FaultRig | undefined;

  before(async () => {
    rig = await startFaultRig(LISTENERS, { replicas: 1 });
    ({ d, pg, g } = rig);
    nc = await d.natsConnect();
  });

  after(async () => {
    await nc?.close();
    await rig?.close();
  });

  it('sends each of 1,000 distributions once (counted at the listeners) with both replicas relaying', async () => {
    const receipts = countReceipts(nc, LISTENERS);
    await g.createKeys('replicas', 334);
    assert.equal(await g.push('replicas', 'all'), 1002);
    await g.assertAll('replicas', 334, LISTENERS);
    await nc.flush();
    const packagesPerDistribution = await pg.query(
      `SELECT count(*)::int AS n FROM packages p JOIN distributions d ON d.id = p.distribution_id JOIN key_versions v ON v.id = d.key_version_id
         JOIN keys k ON k.id = v.key_id WHERE k.name LIKE 'replicas-%' GROUP BY p.distribution_id HAVING count(*) <> 1`,
    );
    const reasons = await pg.query(`SELECT details->>'code' AS code, count(*)::int AS n FROM audit_events WHERE action = 'distribution.reissued' GROUP BY 1`);
    assert.equal(packagesPerDistribution.rows.length, 0, `no distribution needed a second package (re-issues by reason: ${JSON.stringify(reasons.rows)})`);
    const ofBatch = receipts.filter((r) => r.outcome === 'imported');
    assert.equal(ofBatch.length, 1002, 'the listeners imported exactly 1,002 packages');
    assert.equal(receipts.filter((r) => r.outcome === 'rejected' || r.outcome === 'already_present').length, 0, 'no duplicate reached a listener');
  });

  it('keeps going when one replica is killed mid-push', async () => {
    await g.createKeys('replica-kill', 334);
    await g.push('replica-kill', 'all');
    await g.waitConfirmed('replica-kill', 100);
    // The first hub goes: the rest of the push can only be finished by the replica.
    await d.stopHub('SIGKILL');
    await g.assertAll('replica-kill', 334, LISTENERS);
  });
});

describe('scale-out: 3-node NATS JetStream cluster', function () {
  this.timeout(300_000);
  const LISTENERS = ['c1', 'c2', 'c3'];
  let d: Deployment;
  let g: Guarantees;
  let rig: FaultRig | undefined;

  before(async () => {
    rig = await startFaultRig(LISTENERS, { natsCluster: true });
    ({ d, g } = rig);
  });

  after(async () => {
    await rig?.close();
  });

  it('loses nothing when one of three nodes is killed mid-push', async () => {
    await g.createKeys('cluster', 334);
    await g.push('cluster', 'all');
    await g.waitConfirmed('cluster', 100);
    await d.natsCluster!.nodes[0].kill9();
    await g.assertAll('cluster', 334, LISTENERS, 180_000);
  });
});
