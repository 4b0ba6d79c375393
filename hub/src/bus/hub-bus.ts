import {
  AckPolicy,
  connect,
  DeliverPolicy,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
} from 'nats';
import { STREAMS, subjects } from '@keyhub/protocol';
import { KeyhubError, type Logger } from '@keyhub/shared';
import { JetStreamPublisher, type StoredAck } from './jetstream-publisher';

export interface HubBusOptions {
  servers: string[];
  name: string;
  /** Stream replicas: 1 on a single server, 3 on a cluster. */
  replicas?: number;
}

/**
 * The hub's side of NATS: owns both streams and every listener's durable
 * consumer (so a listener needs no stream-admin rights), publishes DOWN,
 * consumes UP through one durable shared by all hub replicas.
 */
export class HubBus {
  private readonly publisher: JetStreamPublisher;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly replicas: number,
    private readonly logger: Logger,
  ) {
    this.publisher = new JetStreamPublisher(nc, 10_000);
  }

  static async connect(options: HubBusOptions, logger: Logger): Promise<HubBus> {
    let nc: NatsConnection;
    try {
      // noAsyncTraces: the client otherwise builds an Error (a stack capture) for every request, and a
      // JetStream publish is a request: at thousands of publishes a second that was the client's largest cost.
      nc = await connect({ servers: options.servers, name: options.name, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000, noAsyncTraces: true });
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', `cannot connect to NATS at ${options.servers.join(',')}`, { cause: err });
    }
    void (async () => {
      for await (const s of nc.status()) logger.info({ event: 'nats_status', type: s.type }, 'NATS connection status');
    })();
    const jsm = await nc.jetstreamManager({ timeout: 10_000 });
    return new HubBus(nc, nc.jetstream({ timeout: 10_000 }), jsm, options.replicas ?? 1, logger);
  }

  get connection(): NatsConnection {
    return this.nc;
  }

  async ensureStreams(): Promise<void> {
    for (const s of [STREAMS.down, STREAMS.up]) {
      const config = {
        name: s.name,
        subjects: [...s.subjects],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        num_replicas: this.replicas,
        duplicate_window: nanos(2 * 60_000),
        max_age: nanos(30 * 24 * 3600_000),
        max_msg_size: 64 * 1024 + 1024,
      };
      try {
        await this.jsm.streams.info(s.name);
        await this.jsm.streams.update(s.name, config);
      } catch (err) {
        if (!isNotFound(err)) throw new KeyhubError('BUS_UNAVAILABLE', `cannot inspect stream ${s.name}`, { cause: err });
        await this.jsm.streams.add(config);
      }
    }
    await this.ensureConsumer(STREAMS.up.name, subjects.hubConsumer, undefined);
  }

  /** Created at approval time, so messages wait in the stream for a listener that has not started yet. */
  async ensureListenerConsumer(listenerId: string): Promise<void> {
    await this.ensureConsumer(STREAMS.down.name, subjects.listenerConsumer(listenerId), subjects.toListenerAll(listenerId));
  }

  private async ensureConsumer(stream: string, durable: string, filter: string | undefined): Promise<void> {
    try {
      await this.jsm.consumers.info(stream, durable);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw new KeyhubError('BUS_UNAVAILABLE', `cannot inspect consumer ${durable}`, { cause: err });
    }
    await this.jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      max_ack_pending: 1024,
      num_replicas: this.replicas,
      ...(filter ? { filter_subject: filter } : {}),
    });
  }

  /**
   * Listeners for which something is still in flight: their durable consumer
   * holds messages not yet delivered or acked, or the hub's own UP consumer
   * holds receipts not yet applied (then every listener counts as busy).
   * Order matters: a listener publishes its receipt before it acks the
   * package, so the DOWN consumers are read first and the UP consumer last.
   * Read the other way round, a receipt published in between would be seen
   * in neither place.
   */
  async listenersWithBacklog(listenerIds: string[]): Promise<Set<string>> {
    const busy = new Set<string>();
    for (const id of listenerIds) {
      try {
        const info = await this.jsm.consumers.info(STREAMS.down.name, subjects.listenerConsumer(id));
        if (info.num_pending + info.num_ack_pending > 0) busy.add(id);
      } catch (err) {
        // Unknown consumer state is treated as busy: a needless re-send is worse than a delayed one.
        if (!isNotFound(err)) busy.add(id);
      }
    }
    try {
      const up = await this.jsm.consumers.info(STREAMS.up.name, subjects.hubConsumer);
      if (up.num_pending + up.num_ack_pending > 0) return new Set(listenerIds);
    } catch {
      return new Set(listenerIds);
    }
    return busy;
  }

  /** Publishes with a message id: JetStream drops a second publish of the same id within its window. */
  publish(subject: string, payload: Uint8Array, msgId: string): Promise<StoredAck> {
    return this.publisher.publish(subject, payload, msgId);
  }

  async consumeUp(handler: (msg: JsMsg) => Promise<void>, maxInFlight = 64): Promise<ConsumerMessages> {
    const consumer = await this.js.consumers.get(STREAMS.up.name, subjects.hubConsumer);
    const messages = await consumer.consume({ max_messages: maxInFlight });
    // Messages are handled concurrently (receipts then commit in groups): each receipt locks its own
    // distribution row, so order between them does not matter.
    const concurrency = Math.max(1, maxInFlight);
    void (async () => {
      const inFlight = new Set<Promise<void>>();
      for await (const m of messages) {
        const p: Promise<void> = handler(m)
          .catch((err: unknown) => {
            // The handler decides ack/nak; an escape here is a bug, so the message is retried later.
            this.logger.error({ err: errorSummary(err), subject: m.subject }, 'UP message handler failed');
            m.nak(5_000);
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= concurrency) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    })();
    return messages;
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
    this.publisher.close();
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}

export function errorSummary(err: unknown): { code?: string; message: string } {
  if (err instanceof KeyhubError) return { code: err.code, message: err.message };
  return { message: err instanceof Error ? err.message : String(err) };
}
