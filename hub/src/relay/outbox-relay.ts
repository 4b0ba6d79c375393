import { Client } from 'pg';
import type { DataSource } from 'typeorm';
import { SUBJECT_ROOT } from '@keyhub/protocol';
import type { Logger } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../audit/audit-log';
import { errorSummary, type HubBus } from '../bus/hub-bus';
import { markDistributionsSent } from '../store/queries/distributions';
import { claimUrgentOutboxBatch } from '../store/queries/key-commands';
import { claimOutboxBatch, listenForOutbox } from '../store/queries/outbox';

/**
 * Publishes committed outbox rows to JetStream, urgent rows (priority > 0:
 * compromise and destroy commands) before the others. Rows are claimed with
 * FOR UPDATE SKIP LOCKED and deleted in the same statement (replicas share
 * the work, none publishes a row another holds), published pipelined with
 * Nats-Msg-Id = message id, and the transaction commits only after every
 * publish was acknowledged.
 * A crash between publish and commit re-publishes; JetStream's duplicate
 * window and the listener's idempotent import absorb that.
 */
export class OutboxRelay {
  private running = false;
  private wake?: () => void;
  private notified = false;
  private listenClient?: Client;
  private readonly knownConsumers = new Set<string>();
  private loop?: Promise<void>;

  constructor(
    private readonly ds: DataSource,
    private readonly bus: HubBus,
    private readonly databaseUrl: string,
    private readonly batch: number,
    private readonly logger: Logger,
    private readonly pollMs = 500,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    await this.listen();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.listenClient?.end().catch(() => undefined);
  }

  /** LISTEN for commits that wrote outbox rows; polling stays as the fallback if the connection drops. */
  private async listen(): Promise<void> {
    try {
      const client = new Client({ connectionString: this.databaseUrl, application_name: 'keyhub-relay-listen' });
      client.on('error', (err) => {
        this.logger.warn({ err: errorSummary(err) }, 'outbox LISTEN connection lost; polling until it is back');
        this.listenClient = undefined;
      });
      client.on('notification', () => {
        this.notified = true;
        this.wake?.();
      });
      await client.connect();
      await listenForOutbox(client);
      this.listenClient = client;
    } catch (err) {
      this.logger.warn({ err: errorSummary(err) }, 'cannot LISTEN for outbox notifications; polling');
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      // A commit notified while a pass runs must not wait for the next poll: that pass may have
      // claimed its rows before the commit. (It did, and the relay idled up to pollMs.)
      this.notified = false;
      try {
        const n = await this.drainOnce();
        failures = 0;
        if (n >= this.batch || this.notified) continue;
      } catch (err) {
        failures++;
        this.logger.warn({ err: errorSummary(err), failures }, 'outbox relay pass failed; will retry');
      }
      if (!this.listenClient && this.running) await this.listen();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, failures ? Math.min(5000, 200 * 2 ** failures) : this.pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  async drainOnce(): Promise<number> {
    return this.ds.transaction(async (m) => {
      // The urgent lane first (compromise, destroy: claimUrgentOutboxBatch), then the rest in commit
      // order; each claimed and deleted in one statement (see claimOutboxBatch).
      const urgent = await claimUrgentOutboxBatch(m, this.batch);
      const normal = urgent.length < this.batch ? await claimOutboxBatch(m, this.batch - urgent.length) : [];
      const rows = urgent.length ? [...urgent, ...normal] : normal;
      if (rows.length === 0) return 0;
      for (const listenerId of new Set(rows.map((r) => listenerOf(r.subject)))) {
        if (!listenerId || this.knownConsumers.has(listenerId)) continue;
        await this.bus.ensureListenerConsumer(listenerId);
        this.knownConsumers.add(listenerId);
      }
      // Stored before any normal row of the pass is published: nothing claimed with them can overtake them.
      if (urgent.length) await Promise.all(urgent.map((r) => this.bus.publish(r.subject, r.payload, r.msg_id)));
      await Promise.all(normal.map((r) => this.bus.publish(r.subject, r.payload, r.msg_id)));
      // Same lock order as every other writer: the audit chain before distribution rows.
      await lockAuditChain(m);
      const distributionIds = rows.flatMap((r) => (r.distribution_id ? [r.distribution_id] : []));
      const sent = distributionIds.length ? await markDistributionsSent(m, distributionIds) : [];
      // One event per pass: the ids it published (what each one is, the 'distribution.queued' event says).
      if (sent.length) {
        await appendAudit(m, [{ actor: 'hub', action: 'distribution.sent', subject: `outbox:${rows[0].id}`, details: { count: sent.length, distributions: sent.map((d) => d.id) } }]);
      }
      return rows.length;
    });
  }
}

function listenerOf(subject: string): string | undefined {
  const parts = subject.split('.');
  return `${parts[0]}.${parts[1]}` === SUBJECT_ROOT && (parts[2] === 'to' || parts[2] === 'urgent') ? parts[3] : undefined;
}
