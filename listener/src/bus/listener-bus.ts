import { connect, type ConsumerMessages, type JetStreamClient, type JsMsg, type NatsConnection } from 'nats';
import { encodeEnvelope, STREAMS, subjects, type Message, type SignedEnvelope, type UpKind } from '@keyhub/protocol';
import { KeyhubError, type Logger } from '@keyhub/shared';

/**
 * The listener's side of NATS: reads its own durable consumer (created by the
 * hub at approval), publishes its own UP subjects, sends heartbeats. Needs no
 * stream-admin rights.
 */
export class ListenerBus {
  private isConnected = true;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly listenerId: string,
  ) {}

  static async connect(servers: string[], listenerId: string, logger: Logger): Promise<ListenerBus> {
    let nc: NatsConnection;
    try {
      // No stack capture per request (a receipt publish is one): see HubBus.connect.
      nc = await connect({ servers, name: `keyhub-listener-${listenerId}`, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000, noAsyncTraces: true });
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', `cannot connect to NATS at ${servers.join(',')}`, { cause: err });
    }
    const bus = new ListenerBus(nc, nc.jetstream({ timeout: 10_000 }), listenerId);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') bus.isConnected = false;
        else if (s.type === 'reconnect') bus.isConnected = true;
        logger.info({ event: 'nats_status', type: s.type }, 'NATS connection status');
      }
    })();
    return bus;
  }

  /** False between a disconnect and the reconnect that follows it, and after close. */
  get connected(): boolean {
    return this.isConnected && !this.nc.isClosed();
  }

  async publishUp(kind: UpKind, envelope: SignedEnvelope<Message>): Promise<void> {
    try {
      await this.js.publish(subjects.fromListener(this.listenerId, kind), encodeEnvelope(envelope), { msgID: envelope.payload.id, timeout: 10_000 });
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', `cannot publish ${kind} to the hub`, { cause: err });
    }
  }

  heartbeat(envelope: SignedEnvelope<Message>): void {
    this.nc.publish(subjects.heartbeat(this.listenerId), encodeEnvelope(envelope));
  }

  /**
   * Waits for the durable consumer (it appears when the hub approves this
   * listener), then hands messages to the handler in stream order, with up to
   * `concurrency` in flight: a token imports several keys at once much faster
   * than one after another, and each message is acked on its own.
   */
  async consume(handler: (msg: JsMsg) => Promise<void>, shouldRun: () => boolean, onWaiting: () => void, concurrency = 4): Promise<ConsumerMessages | undefined> {
    for (;;) {
      if (!shouldRun()) return undefined;
      try {
        const consumer = await this.js.consumers.get(STREAMS.down.name, subjects.listenerConsumer(this.listenerId));
        const messages = await consumer.consume({ max_messages: Math.max(16, concurrency * 4) });
        void (async () => {
          const inFlight = new Set<Promise<void>>();
          for await (const m of messages) {
            const p: Promise<void> = handler(m).finally(() => inFlight.delete(p));
            inFlight.add(p);
            if (inFlight.size >= concurrency) await Promise.race(inFlight);
          }
          await Promise.all(inFlight);
        })();
        return messages;
      } catch (err) {
        if (!(err instanceof Error && /not found|no responders|timeout/i.test(err.message))) throw err;
        onWaiting();
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }
}
