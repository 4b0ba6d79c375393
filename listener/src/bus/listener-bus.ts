import { connect, type ConsumerMessages, type JetStreamClient, type JsMsg, type NatsConnection } from 'nats';
import { decodeEnvelope, encodeEnvelope, STREAMS, subjects, type Message, type SignedEnvelope, type UpKind } from '@keyhub/protocol';
import { KeyhubError, type Logger } from '@keyhub/shared';
import type { HubKeyStore } from '../state/hub-key';
import type { ListenerNatsCredentials } from './nats-credentials';

/** How this listener reaches NATS: its credentials (own JWT or bootstrap), the CA of the servers' certificates. */
export interface ListenerNatsAccess {
  credentials?: ListenerNatsCredentials;
  /** Checks the hub's signature on the NATS credentials message. */
  hubKeys?: HubKeyStore;
  /** PEM; TLS is required when set. */
  tlsCa?: string;
}

/** The only consumer a bootstrap credential may read: see hub/src/nats/permissions.ts. */
const enrollmentConsumer = (listenerId: string): string => `enroll-${listenerId}`;

/**
 * The listener's side of NATS: reads its own durable consumer (created by the
 * hub at approval), publishes its own UP subjects, sends heartbeats. Needs no
 * stream-admin rights. Replies (JetStream acks, pulled messages) arrive under
 * `_INBOX_<id>`, the one prefix its NATS user may subscribe to.
 *
 * Before approval the site holds only a bootstrap credential: it then reads
 * its enrollment consumer until the hub's answer (its own user JWT) arrives,
 * saves it, and reconnects as itself before reading anything else.
 */
export class ListenerBus {
  private isConnected = true;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly listenerId: string,
    private readonly access: ListenerNatsAccess,
    private readonly logger: Logger,
  ) {}

  static async connect(servers: string[], listenerId: string, logger: Logger, access: ListenerNatsAccess = {}): Promise<ListenerBus> {
    let nc: NatsConnection;
    try {
      // No stack capture per request (a receipt publish is one): see HubBus.connect.
      nc = await connect({
        servers,
        name: `keyhub-listener-${listenerId}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        timeout: 5000,
        noAsyncTraces: true,
        inboxPrefix: `_INBOX_${listenerId}`,
        ...(access.credentials ? { authenticator: access.credentials.authenticator() } : {}),
        ...(access.tlsCa ? { tls: { ca: access.tlsCa } } : {}),
      });
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', `cannot connect to NATS at ${servers.join(',')}`, { cause: err });
    }
    const bus = new ListenerBus(nc, nc.jetstream({ timeout: 10_000 }), listenerId, access, logger);
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
    const msgID = (envelope.payload as { id?: string }).id;
    try {
      await this.js.publish(subjects.fromListener(this.listenerId, kind), encodeEnvelope(envelope), { ...(msgID ? { msgID } : {}), timeout: 10_000 });
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', `cannot publish ${kind} to the hub`, { cause: err });
    }
  }

  heartbeat(envelope: SignedEnvelope<Message>): void {
    // A bootstrap credential may not send heartbeats; the site has nothing to report before approval.
    if (this.access.credentials?.identity === 'bootstrap') return;
    this.nc.publish(subjects.heartbeat(this.listenerId), encodeEnvelope(envelope));
  }

  /**
   * Waits for the durable consumer (it appears when the hub approves this
   * listener), then hands messages to the handler in stream order, with up to
   * `concurrency` in flight: a token imports several keys at once much faster
   * than one after another, and each message is acked on its own. The NATS
   * credentials message is taken here, never passed to the handler.
   */
  async consume(handler: (msg: JsMsg) => Promise<void>, shouldRun: () => boolean, onWaiting: () => void, concurrency = 4): Promise<ConsumerMessages | undefined> {
    for (;;) {
      if (!shouldRun()) return undefined;
      try {
        if (this.access.credentials?.identity === 'bootstrap') {
          if (await this.takeCredentials()) {
            // The next connection is made as the site itself (the authenticator reads the new JWT).
            await this.nc.reconnect();
            continue;
          }
          onWaiting();
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        const consumer = await this.js.consumers.get(STREAMS.down.name, subjects.listenerConsumer(this.listenerId));
        const messages = await consumer.consume({ max_messages: Math.max(16, concurrency * 4) });
        void (async () => {
          const inFlight = new Set<Promise<void>>();
          for await (const m of messages) {
            if (m.subject === subjects.toListener(this.listenerId, 'nats_credentials')) {
              this.credentialsMessage(m);
              continue;
            }
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

  /**
   * The urgent lane (compromise, destroy: protocol subjects.urgent), read
   * through its own durable consumer in a loop of its own, one message at a
   * time in stream order, however long the normal backlog is. Waits while
   * the site holds only its bootstrap credential, and for the consumer to
   * exist (the hub creates it with the normal one).
   */
  async consumeUrgent(handler: (msg: JsMsg) => Promise<void>, shouldRun: () => boolean): Promise<ConsumerMessages | undefined> {
    for (;;) {
      if (!shouldRun()) return undefined;
      try {
        if (this.access.credentials?.identity === 'bootstrap') throw new Error('not found: bootstrap credential');
        const consumer = await this.js.consumers.get(STREAMS.down.name, subjects.listenerUrgentConsumer(this.listenerId));
        const messages = await consumer.consume({ max_messages: 4 });
        void (async () => {
          for await (const m of messages) await handler(m);
        })();
        return messages;
      } catch (err) {
        if (!(err instanceof Error && /not found|no responders|timeout|permission/i.test(err.message))) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** With the bootstrap credential: reads the enrollment consumer; true once the site's own JWT is saved. */
  private async takeCredentials(): Promise<boolean> {
    const consumer = await this.js.consumers.get(STREAMS.down.name, enrollmentConsumer(this.listenerId));
    const batch = await consumer.fetch({ max_messages: 4, expires: 2000 });
    let saved = false;
    for await (const m of batch) saved = this.credentialsMessage(m) || saved;
    if (saved) await this.nc.flush();
    return saved;
  }

  /** Verified and saved, then acked; one that does not verify is terminated and changes nothing. */
  private credentialsMessage(m: JsMsg): boolean {
    const { credentials, hubKeys } = this.access;
    try {
      if (!credentials || !hubKeys) throw new KeyhubError('CONFIG_INVALID', 'NATS credentials arrived, but this listener keeps none');
      const decoded = decodeEnvelope(m.data);
      if (!decoded.ok) throw new KeyhubError(decoded.code, decoded.detail);
      const result = credentials.accept(decoded.envelope, hubKeys);
      this.logger.info({ event: 'nats_credentials', result }, result === 'saved' ? 'NATS user JWT received; connecting as this site' : 'NATS user JWT already held');
      m.ack();
      return result === 'saved';
    } catch (err) {
      const e = KeyhubError.from(err);
      this.logger.warn({ event: 'nats_credentials_refused', code: e.code, detail: e.message }, 'NATS credentials message refused');
      m.term();
      return false;
    }
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }
}
