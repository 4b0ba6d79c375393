import { randomUUID } from 'node:crypto';
import type { ConsumerMessages } from 'nats';
import { MESSAGE_TYPES, type Heartbeat } from '@keyhub/protocol';
import { KeyhubError, runReadinessChecks, type Readiness, type ReadinessCheck } from '@keyhub/shared';
import { ListenerBus } from './bus/listener-bus';
import { CheckpointWitness } from './checkpoint-witness';
import { Inbox, type InboxResult } from './inbox';
import { CheckpointStore } from './state/checkpoints';
import type { ListenerRuntime } from './runtime';
import { HeartbeatSequence } from './state/heartbeat-sequence';
import { Journal } from './state/journal';
import { CommandHandler } from './commands/command-handler';
import { CommandJournal } from './state/command-journal';
import { Tombstones } from './state/tombstones';
import { CeremonyStore } from './state/ceremony';
import { consumerConcurrency, ImportGates } from './targets/import-slots';
import { indexTargets } from './inventory/indexed-targets';
import { InventoryIndex } from './inventory/inventory-index';
import { InventoryReporter } from './inventory/inventory-reporter';

/** How often a message being processed tells JetStream it is still worked on (the hub's consumers wait 30 s for an ack). */
const WORKING_EVERY_MS = 10_000;

/**
 * `keyhub-listener run`: consumes this listener's durable consumer, several
 * messages at a time (so a listener that was offline catches up on start,
 * quickly): they are taken in stream order but may finish in any order,
 * and acks each message only after the inbox finished it,
 * and sends signed heartbeats (each with a fresh time and a sequence that
 * only grows, so a captured one is worthless later).
 *
 * What happens to a message: handled, it is acked; dropped by the inbox
 * (did not verify, not ours) it is terminated, never to come again; a
 * passing failure (HSM, bus) naks it for a later delivery, except on the
 * consumer's last delivery (`maxDeliver`), where the inbox has already
 * turned it into a failed receipt with its code, or, if even that failed,
 * it is terminated: the hub's re-send timer then issues a fresh package.
 */
export class ListenerAgent {
  private running = false;
  private messages?: ConsumerMessages;
  private urgent?: ConsumerMessages;
  private tombstones?: Tombstones;
  private commandJournal?: CommandJournal;
  private heartbeatTimer?: NodeJS.Timeout;
  private bus?: ListenerBus;
  private journal?: Journal;
  private consumer: 'not started' | 'waiting for approval' | 'ok' | 'closed' = 'not started';
  private heartbeatSequence?: HeartbeatSequence;
  private inventoryIndex?: InventoryIndex;
  private inventory?: InventoryReporter;

  constructor(
    private readonly rt: ListenerRuntime,
    private readonly events: { onReady?: (state: 'consuming' | 'waiting') => void; onResult?: (r: InboxResult) => void } = {},
  ) {}

  async start(): Promise<void> {
    const { rt } = this;
    this.running = true;
    this.journal = Journal.open(rt.home);
    this.heartbeatSequence = HeartbeatSequence.open(rt.home);
    this.bus = await ListenerBus.connect(rt.config.nats.servers, rt.config.id, rt.logger, rt.nats);
    // Imports and destroys pass through the inventory index (listener/src/inventory): it keeps the KCVs the inventory reports.
    this.inventoryIndex = InventoryIndex.open(rt.home, rt.logger);
    const targets = indexTargets(rt.targets, this.inventoryIndex);
    const inbox = new Inbox(rt.config.id, rt.keys, rt.hubKeys, this.journal, targets, this.bus, rt.logger);
    inbox.ceremonies = { listenerId: rt.config.id, keys: rt.keys, hubKeys: rt.hubKeys, store: new CeremonyStore(rt.home), logger: rt.logger };
    inbox.witness = new CheckpointWitness(CheckpointStore.open(rt.home), rt.hubKeys, rt.logger);
    this.tombstones = Tombstones.open(rt.home);
    this.commandJournal = CommandJournal.open(rt.home);
    inbox.tombstones = this.tombstones;
    inbox.targetKeks = { listenerId: rt.config.id, keys: rt.keys, hubKeys: rt.hubKeys, tokens: rt.targetTokens, bus: this.bus, logger: rt.logger, now: () => new Date() };
    inbox.commands = new CommandHandler(rt.config.id, rt.keys, rt.hubKeys, this.commandJournal, this.tombstones, targets, this.bus, rt.logger);
    // PKCS#11 and cloud imports share importConcurrency; a keystore has slots of its own, so a rewrite takes a large batch.
    inbox.importGates = new ImportGates(rt.config.importConcurrency);
    const inventory = new InventoryReporter(rt, this.bus, this.inventoryIndex);
    this.inventory = inventory;
    let announcedWaiting = false;
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), rt.config.heartbeatSeconds * 1000);
    await this.heartbeat();
    // The urgent lane (compromise, destroy) in a loop of its own: never behind the normal backlog.
    void this.bus
      .consumeUrgent(
        async (m) => {
          try {
            const r = await inbox.handle({ data: m.data, streamSeq: m.info.streamSequence });
            if (r.kind === 'dropped') m.term();
            else m.ack();
            this.events.onResult?.(r);
          } catch (err) {
            const e = KeyhubError.from(err);
            // The urgent consumer never gives up (max_deliver -1): a passing failure is tried again.
            rt.logger.warn({ code: e.code, detail: e.message, ckr: e.ckr, deliveries: m.info.deliveryCount }, 'urgent command failed; it will be redelivered');
            m.nak(2_000);
          }
        },
        () => this.running,
      )
      .then((urgent) => (this.urgent = urgent))
      .catch((err: unknown) => rt.logger.error({ code: KeyhubError.from(err).code }, 'urgent lane consumer failed'));
    this.messages = await this.bus.consume(
      async (m) => {
        // deliveryCount counts this delivery: 1 the first time.
        const lastAttempt = m.info.deliveryCount >= rt.config.maxDeliver;
        // A message waiting for its batch (a keystore rewrite) or a slow target is still ours: the ack deadline is pushed back while it runs.
        const keepAlive = setInterval(() => m.working(), WORKING_EVERY_MS);
        keepAlive.unref();
        try {
          const r = await inbox.handle({ data: m.data, streamSeq: m.info.streamSequence, lastAttempt });
          if (r.kind === 'dropped') m.term();
          else m.ack();
          // A root KEK is active from now on: the site's inventory counts at the hub.
          if (r.kind === 'root_kek' || r.kind === 'target_kek') void inventory.reportNow();
          this.events.onResult?.(r);
        } catch (err) {
          const e = KeyhubError.from(err);
          if (lastAttempt) {
            rt.logger.warn({ code: e.code, detail: e.message, ckr: e.ckr, deliveries: m.info.deliveryCount }, 'message processing failed on its last delivery; terminated');
            m.term();
            this.events.onResult?.({ kind: 'dropped', code: e.code });
          } else {
            rt.logger.warn({ code: e.code, detail: e.message, ckr: e.ckr, deliveries: m.info.deliveryCount }, 'message processing failed; it will be redelivered');
            m.nak(2_000);
          }
        } finally {
          clearInterval(keepAlive);
        }
      },
      () => this.running,
      () => {
        this.consumer = 'waiting for approval';
        if (!announcedWaiting) this.events.onReady?.('waiting');
        announcedWaiting = true;
      },
      consumerConcurrency(rt.config.importConcurrency, rt.targets.values()),
    );
    if (this.messages) {
      this.consumer = 'ok';
      void this.messages.closed().then(() => (this.consumer = 'closed'));
      // Approved and consuming: the hub takes inventories only from active sites.
      inventory.start();
      this.events.onReady?.('consuming');
    }
  }

  /** Highest package sequence accepted so far; undefined before the journal is open. */
  get lastSequence(): number | undefined {
    return this.journal?.lastSequence;
  }

  /**
   * Ready means keys pushed now would be imported: connected to NATS,
   * consuming (approved, not waiting), and every target healthy.
   */
  readiness(): Promise<Readiness> {
    const checks: Record<string, ReadinessCheck> = {
      nats: async () => (!this.running ? 'not running' : this.bus?.connected ? 'ok' : this.bus ? 'disconnected' : 'not connected'),
      consumer: async () => this.consumer,
    };
    for (const t of this.rt.targets.values()) {
      checks[`target:${t.name}`] = async () => {
        const h = await t.health();
        return h.healthy ? 'ok' : (h.detail ?? 'unhealthy');
      };
    }
    return runReadinessChecks(checks);
  }

  private async heartbeat(): Promise<void> {
    if (!this.bus || !(await this.rt.keys.hasIdentity().catch(() => false))) return;
    try {
      const targets = await Promise.all([...this.rt.targets.values()].map(async (t) => ({ name: t.name, ...(await t.health()) })));
      const now = new Date();
      const sequence = this.heartbeatSequence!.next(now.getTime());
      const hb: Heartbeat = { type: MESSAGE_TYPES.heartbeat, id: randomUUID(), listenerId: this.rt.config.id, issuedAt: now.toISOString(), sequence, targets };
      this.bus.heartbeat(await this.rt.keys.sign(hb));
    } catch (err) {
      this.rt.logger.warn({ code: KeyhubError.from(err).code }, 'heartbeat failed');
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.inventory?.stop();
    this.messages?.stop();
    this.urgent?.stop();
    await this.bus?.close();
    this.inventoryIndex?.close();
    this.journal?.close();
    this.tombstones?.close();
    this.commandJournal?.close();
  }
}
