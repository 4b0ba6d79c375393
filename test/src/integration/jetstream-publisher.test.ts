import { strict as assert } from 'node:assert';
import { connect, DiscardPolicy, nanos, StorageType, type NatsConnection } from 'nats';
import { KeyhubError } from '@keyhub/shared';
import { JetStreamPublisher } from '@keyhub/hub/dist/bus/jetstream-publisher';
import { startNatsServer, type NatsServerHandle } from '../env';

/** Rejects with the KeyhubError the publish failed with. */
async function failure(p: Promise<unknown>): Promise<KeyhubError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KeyhubError, `expected a KeyhubError, got ${String(err)}`);
    return err;
  }
  assert.fail('the publish was expected to fail');
}

describe('JetStreamPublisher (pipelined publish with ack, real nats-server)', function () {
  this.timeout(60_000);
  let nats: NatsServerHandle;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNatsServer({ name: 'keyhub-publisher-test' });
    nc = await connect({ servers: [nats.url], noAsyncTraces: true });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'PUBTEST', subjects: ['pubtest.>'], storage: StorageType.File, duplicate_window: nanos(60_000) });
    await jsm.streams.add({ name: 'PUBFULL', subjects: ['pubfull.>'], storage: StorageType.Memory, max_msgs: 1, discard: DiscardPolicy.New });
  });

  after(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it('stores 2,000 pipelined messages once each, in order, and reports a repeated message id as a duplicate', async () => {
    const publisher = new JetStreamPublisher(nc, 10_000);
    const jsm = await nc.jetstreamManager();
    const before = (await jsm.streams.info('PUBTEST')).state.last_seq;
    const acks = await Promise.all(Array.from({ length: 2000 }, (_, i) => publisher.publish(`pubtest.l${i % 7}`, Buffer.from(`m${i}`), `id-${i}`)));
    assert.deepEqual(
      acks.map((a) => a.seq),
      Array.from({ length: 2000 }, (_, i) => before + i + 1),
    );
    assert.ok(acks.every((a) => a.stream === 'PUBTEST' && !a.duplicate));
    const again = await publisher.publish('pubtest.l0', Buffer.from('m0'), 'id-0');
    assert.equal(again.duplicate, true);
    assert.equal(again.seq, before + 1);
    assert.equal((await jsm.streams.info('PUBTEST')).state.messages, before + 2000);
    // The stored message carries the id as Nats-Msg-Id.
    const stored = await jsm.streams.getMessage('PUBTEST', { seq: before + 5 });
    assert.equal(stored.header.get('Nats-Msg-Id'), 'id-4');
    assert.equal(stored.string(), 'm4');
    assert.equal(publisher.inFlight, 0);
    publisher.close();
    assert.equal((await failure(publisher.publish('pubtest.l0', Buffer.from('late'), 'late-1'))).code, 'BUS_UNAVAILABLE', 'a closed publisher sends nothing');
  });

  it('fails with BUS_UNAVAILABLE when no stream stores the subject, and when the stream refuses the message', async () => {
    const publisher = new JetStreamPublisher(nc, 10_000);
    const none = await failure(publisher.publish('nostream.x', Buffer.from('x'), 'n-1'));
    assert.equal(none.code, 'BUS_UNAVAILABLE');
    assert.match(none.message, /no JetStream stream stores nostream\.x/);
    await publisher.publish('pubfull.a', Buffer.from('1'), 'f-1');
    const full = await failure(publisher.publish('pubfull.a', Buffer.from('2'), 'f-2'));
    assert.equal(full.code, 'BUS_UNAVAILABLE');
    assert.match(full.message, /JetStream refused pubfull\.a/);
    assert.equal(full.retryable, true);
    publisher.close();
  });

  it('times out when nothing answers, and fails what is in flight when the connection closes', async () => {
    // A plain subscriber (no stream) receives the message and never answers.
    const silent = nc.subscribe('silent.>');
    const publisher = new JetStreamPublisher(nc, 300);
    const started = Date.now();
    const timedOut = await failure(publisher.publish('silent.x', Buffer.from('x'), 's-1'));
    assert.equal(timedOut.code, 'TIMEOUT');
    assert.ok(Date.now() - started >= 300, 'not before the time-out');
    silent.unsubscribe();

    const other = await connect({ servers: [nats.url], noAsyncTraces: true });
    const held = other.subscribe('held.>');
    const p2 = new JetStreamPublisher(other, 30_000);
    const inFlight = p2.publish('held.x', Buffer.from('x'), 'h-1');
    await other.flush();
    await other.close();
    const closed = await failure(inFlight);
    assert.equal(closed.code, 'TIMEOUT');
    assert.match(closed.message, /connection closed/);
    assert.equal((await failure(p2.publish('pubtest.x', Buffer.from('x'), 'h-2'))).code, 'BUS_UNAVAILABLE');
    p2.close(); // a second close, as HubBus.close does after the connection's own: no effect, no throw
    held.unsubscribe();
  });
});
