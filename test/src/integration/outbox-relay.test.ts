import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { HubBus } from '@keyhub/hub/dist/bus/hub-bus';
import { OutboxRelay } from '@keyhub/hub/dist/relay/outbox-relay';
import { subjects } from '@keyhub/protocol';
import { createHubFixture, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

describe('outbox relay (real PostgreSQL and nats-server)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let bus: HubBus;
  const listenerId = 'relay-test';
  const subject = subjects.toListener(listenerId, 'package');

  before(async () => {
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: true });
    bus = await HubBus.connect({ servers: fx.config.nats.servers, name: 'relay-test' }, fx.logger);
    cleanup.add('hub bus', () => bus.close());
    await bus.ensureStreams();
  });

  after(async () => {
    await cleanup.run();
  });

  /** Commits outbox rows and notifies, as a distribute chunk does. */
  async function commitOutbox(n: number): Promise<string[]> {
    const ids = Array.from({ length: n }, () => randomUUID());
    await fx.rt.ds.transaction(async (m) => {
      await m.query(`INSERT INTO outbox (subject, msg_id, payload) SELECT $1, id, convert_to(id, 'UTF8') FROM unnest($2::text[]) AS id`, [subject, ids]);
      await m.query('NOTIFY keyhub_outbox');
    });
    return ids;
  }

  const pending = async (): Promise<number> => Number((await fx.rt.ds.query('SELECT count(*) AS n FROM outbox'))[0].n);

  it('publishes rows committed while a pass is running without waiting for the next poll', async () => {
    // A poll interval far beyond the test: only the commit notification can start the next pass.
    const relay = new OutboxRelay(fx.rt.ds, bus, fx.config.databaseUrl, 256, fx.logger, 60_000);
    const published: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = false;
    const original = bus.publish.bind(bus);
    bus.publish = async (s, payload, msgId) => {
      if (!held) {
        held = true;
        await gate; // the first pass waits here until the second commit has been notified
      }
      published.push(msgId);
      return original(s, payload, msgId);
    };
    try {
      await relay.start();
      const first = await commitOutbox(3);
      while (!held) await new Promise((r) => setTimeout(r, 20));
      const second = await commitOutbox(2);
      // Let the notification of the second commit reach the relay while its first pass still runs.
      await new Promise((r) => setTimeout(r, 500));
      release();
      const started = Date.now();
      while ((await pending()) > 0 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await pending(), 0, 'the rows of the second commit were published well before the 60 s poll');
      assert.deepEqual(new Set(published), new Set([...first, ...second]));
      assert.equal(published.length, 5, 'each row published once');
    } finally {
      bus.publish = original;
      await relay.stop();
    }
    const jsm = await bus.connection.jetstreamManager();
    const stored = await jsm.streams.getMessage(await jsm.streams.find(subject), { last_by_subj: subject });
    assert.ok(stored.header.get('Nats-Msg-Id'), 'stored with its message id');
  });
});
