import { connect, type Authenticator, type ConsumerConfig, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg, type NatsConnection, type StreamConfig } from 'nats';
import { STREAMS, subjects } from '@keyhub/protocol';
import { KeyhubError, type Logger } from '@keyhub/shared';
import {
  consumerDrift,
  enrollmentConsumerConfig,
  expectedConsumer,
  expectedStream,
  hubConsumerConfig,
  listenerConsumerConfig,
  listenerUrgentConsumerConfig,
  streamDrift,
  type ConsumerLimits,
  type Drift,
} from '../nats/jetstream-config';
import type { HubConfig } from '../config';
import { HUB_INBOX_PREFIX } from '../nats/permissions';
import { JetStreamPublisher, type StoredAck } from './jetstream-publisher';
import { isNotFound } from './not-found';
import { cleanSiteStream } from './site-stream-cleanup';

/** The bus options `keyhub serve` connects with: the configuration's NATS section and the hub's NATS access. */
export function hubBusOptions(nats: HubConfig['nats'], access: { authenticator?: Authenticator; tlsCa?: string }): HubBusOptions {
  return {
    servers: nats.servers,
    name: nats.name,
    replicas: nats.replicas,
    authenticator: access.authenticator,
    tlsCa: access.tlsCa,
    maxDeliver: nats.maxDeliver,
    upMaxDeliver: nats.upMaxDeliver,
  };
}

export interface HubBusOptions {
  servers: string[];
  name: string;
  /** Stream replicas: 1 on a single server, 3 on a cluster. */
  replicas?: number;
  /** The hub's NATS user (a JWT issued at start by the account key in the HSM); none on a server without auth. */
  authenticator?: Authenticator;
  /** PEM of the CA that issued the servers' certificates; TLS is required when set. */
  tlsCa?: string;
  /** Deliveries of a listener's package before the server gives up on it (the listener reports the last as failed). */
  maxDeliver?: number;
  /** Deliveries of one UP message to the hub; retries beyond it are left to the re-send of the package. */
  upMaxDeliver?: number;
}

/**
 * The hub's side of NATS: owns both streams and every listener's durable
 * consumer (so a listener needs no stream-admin rights), publishes DOWN,
 * consumes UP through one durable shared by all hub replicas.
 */
export class HubBus {
  private readonly publisher: JetStreamPublisher;

  private readonly enrollmentConsumers = new Set<string>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly replicas: number,
    private readonly limits: { down: ConsumerLimits; up: ConsumerLimits },
    private readonly logger: Logger,
  ) {
    this.publisher = new JetStreamPublisher(nc, 10_000, HUB_INBOX_PREFIX);
  }

  static async connect(options: HubBusOptions, logger: Logger): Promise<HubBus> {
    let nc: NatsConnection;
    try {
      // noAsyncTraces: the client otherwise builds an Error (a stack capture) for every request, and a
      // JetStream publish is a request: at thousands of publishes a second that was the client's largest cost.
      // inboxPrefix: replies (JetStream acks, pulled messages) come under a prefix only the hub user may subscribe to.
      nc = await connect({
        servers: options.servers,
        name: options.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        timeout: 5000,
        noAsyncTraces: true,
        inboxPrefix: HUB_INBOX_PREFIX,
        ...(options.authenticator ? { authenticator: options.authenticator } : {}),
        ...(options.tlsCa ? { tls: { ca: options.tlsCa } } : {}),
      });
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', `cannot connect to NATS at ${options.servers.join(',')}`, { cause: err });
    }
    void (async () => {
      for await (const s of nc.status()) logger.info({ event: 'nats_status', type: s.type }, 'NATS connection status');
    })();
    const jsm = await nc.jetstreamManager({ timeout: 10_000 });
    const replicas = options.replicas ?? 1;
    const limits = { down: { replicas, maxDeliver: options.maxDeliver ?? 10 }, up: { replicas, maxDeliver: options.upMaxDeliver ?? 50 } };
    return new HubBus(nc, nc.jetstream({ timeout: 10_000 }), jsm, replicas, limits, logger);
  }

  get connection(): NatsConnection {
    return this.nc;
  }

  /**
   * Creates the streams and the hub's consumer, or checks them: a stored
   * config that drifted is repaired when the server can change it back, and
   * refused (BUS_CONFIG_TAMPERED) otherwise; see nats/jetstream-config.ts.
   * Every listener and enrollment consumer on the DOWN stream is checked too.
   */
  async ensureStreams(): Promise<void> {
    for (const which of ['down', 'up'] as const) {
      const config = expectedStream(which, this.replicas);
      let actual: StreamConfig | undefined;
      try {
        actual = (await this.jsm.streams.info(config.name)).config;
      } catch (err) {
        if (!isNotFound(err)) throw new KeyhubError('BUS_UNAVAILABLE', `cannot inspect stream ${config.name}`, { cause: err });
      }
      if (!actual) {
        await this.jsm.streams.add(config);
        continue;
      }
      await this.repair(`stream ${config.name}`, streamDrift(config, actual), async () => {
        const after = (await this.jsm.streams.update(config.name, config)).config;
        return streamDrift(config, after);
      });
    }
    await this.ensureConsumer(STREAMS.up.name, hubConsumerConfig(this.limits.up));
    for await (const info of this.jsm.consumers.list(STREAMS.down.name)) {
      const expected = expectedConsumer(STREAMS.down.name, info.config.durable_name, this.limits.down);
      if (!expected) {
        this.logger.warn({ event: 'nats_consumer_unknown', stream: STREAMS.down.name, consumer: info.name }, 'a consumer Keyhub did not create reads the DOWN stream');
        continue;
      }
      await this.checkConsumer(STREAMS.down.name, expected, info.config);
    }
  }

  /** Created at approval time, so messages wait in the stream for a listener that has not started yet. */
  async ensureListenerConsumer(listenerId: string): Promise<void> {
    await this.ensureConsumer(STREAMS.down.name, listenerConsumerConfig(listenerId, this.limits.down));
    await this.ensureConsumer(STREAMS.down.name, listenerUrgentConsumerConfig(listenerId, this.limits.down));
  }

  /** The one consumer a site's bootstrap credential may pull: its NATS credentials, nothing else. */
  async ensureEnrollmentConsumer(listenerId: string): Promise<void> {
    if (this.enrollmentConsumers.has(listenerId)) return;
    await this.ensureConsumer(STREAMS.down.name, enrollmentConsumerConfig(listenerId, this.limits.down));
    this.enrollmentConsumers.add(listenerId);
  }

  private async ensureConsumer(stream: string, expected: Partial<ConsumerConfig>): Promise<void> {
    const durable = expected.durable_name!;
    let actual: ConsumerConfig | undefined;
    try {
      actual = (await this.jsm.consumers.info(stream, durable)).config;
    } catch (err) {
      if (!isNotFound(err)) throw new KeyhubError('BUS_UNAVAILABLE', `cannot inspect consumer ${durable}`, { cause: err });
    }
    if (!actual) {
      await this.jsm.consumers.add(stream, expected);
      return;
    }
    await this.checkConsumer(stream, expected, actual);
  }

  private async checkConsumer(stream: string, expected: Partial<ConsumerConfig>, actual: ConsumerConfig): Promise<void> {
    const durable = expected.durable_name!;
    await this.repair(`consumer ${stream}/${durable}`, consumerDrift(expected, actual), async () => {
      const { durable_name: _name, filter_subject: _filter, ack_policy: _ack, deliver_policy: _deliver, ...mutable } = expected;
      const after = (await this.jsm.consumers.update(stream, durable, mutable)).config;
      return consumerDrift(expected, after);
    });
  }

  private async repair(what: string, drift: Drift[], update: () => Promise<Drift[]>): Promise<void> {
    if (drift.length === 0) return;
    const fields = drift.map((d) => d.field).join(', ');
    if (drift.some((d) => !d.repairable)) {
      this.logger.error({ event: 'nats_config_tampered', what, drift }, 'JetStream configuration changed in a way the hub cannot repair');
      throw new KeyhubError('BUS_CONFIG_TAMPERED', `${what} differs from Keyhub's configuration in ${fields}; refusing to start`);
    }
    let left: Drift[];
    try {
      left = await update();
    } catch (err) {
      throw new KeyhubError('BUS_CONFIG_TAMPERED', `${what} differs in ${fields} and the server refused the repair`, { cause: err });
    }
    if (left.length) throw new KeyhubError('BUS_CONFIG_TAMPERED', `${what} still differs in ${left.map((d) => d.field).join(', ')} after repair`);
    this.logger.warn({ event: 'nats_config_repaired', what, drift }, 'JetStream configuration had drifted and was repaired');
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
        else if (await this.urgentBacklog(id)) busy.add(id);
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

  /** Commands still in the listener's urgent lane (a listener without one yet has none). */
  private async urgentBacklog(listenerId: string): Promise<boolean> {
    try {
      const info = await this.jsm.consumers.info(STREAMS.down.name, subjects.listenerUrgentConsumer(listenerId));
      return info.num_pending + info.num_ack_pending > 0;
    } catch (err) {
      return !isNotFound(err);
    }
  }

  /**
   * Removes a listener's one-time messages from the DOWN stream once it has
   * confirmed its root KEK: the root KEK wrapped to its transport key and its
   * NATS credentials. Nothing can use them any more (the transport key is
   * destroyed at the site), and they should not wait in the stream for its
   * retention period. Purged by subject, so replicas doing it twice is harmless.
   */
  async purgeOneTimeMessages(listenerId: string): Promise<number> {
    let purged = 0;
    for (const kind of ['root_kek', 'nats_credentials'] as const) {
      const r = await this.jsm.streams.purge(STREAMS.down.name, { filter: subjects.toListener(listenerId, kind) });
      purged += r.purged;
    }
    return purged;
  }

  /** A compromised or decommissioned site's messages (and, for `all`, its consumers) out of the DOWN stream: see cleanSiteStream. */
  cleanSiteStream(listenerId: string, what: 'packages' | 'all'): Promise<number> {
    return cleanSiteStream(this.jsm, listenerId, what);
  }

  /** Publishes with a message id: JetStream drops a second publish of the same id within its window. */
  publish(subject: string, payload: Uint8Array, msgId: string): Promise<StoredAck> {
    // A site's credentials are the answer to its enrollment: the consumer its bootstrap reads them from comes first.
    if (subject.endsWith('.nats_credentials')) {
      const listenerId = subject.split('.')[3];
      return this.ensureEnrollmentConsumer(listenerId).then(() => this.publisher.publish(subject, payload, msgId));
    }
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

export function errorSummary(err: unknown): { code?: string; message: string } {
  if (err instanceof KeyhubError) return { code: err.code, message: err.message };
  return { message: err instanceof Error ? err.message : String(err) };
}
