import type { ConsumerMessages, Subscription } from 'nats';
import { decodeEnvelope, isEnvelopeOf, MESSAGE_TYPES, subjects } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { writeCheckpoint } from '../audit/audit-store';
import { errorSummary, HubBus } from '../bus/hub-bus';
import type { HubContext } from '../context';
import { ApplyReceipt } from '../domain/apply-receipt';
import { ConfirmRootKek } from '../domain/confirm-root-kek';
import { RegisterEnrollment } from '../domain/register-enrollment';
import { ResendDue } from '../domain/resend-due';
import type { HubMetrics } from '../observability/hub-metrics';
import { OutboxRelay } from './outbox-relay';
import { UpHandler } from './up-handler';

/**
 * `keyhub serve`: the long-running hub. Every part is safe to run in several
 * replicas at once (SKIP LOCKED claims, a shared durable consumer, idempotent
 * checkpoints), so there is no leader to elect.
 */
export class HubService {
  private relay?: OutboxRelay;
  private upMessages?: ConsumerMessages;
  private heartbeatSub?: Subscription;
  private timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private seen = new Set<string>();
  private phase: 'starting' | 'ok' | 'stopping' = 'starting';

  constructor(
    private readonly ctx: HubContext,
    private readonly bus: HubBus,
    private readonly ops: { registerEnrollment: RegisterEnrollment; confirmRootKek: ConfirmRootKek; applyReceipt: ApplyReceipt; resendDue: ResendDue },
    private readonly metrics?: HubMetrics,
  ) {}

  /** For readiness: 'ok' only between a completed start and the beginning of stop. */
  get state(): string {
    return this.phase;
  }

  async start(): Promise<void> {
    const { ds, config, logger } = this.ctx;
    await this.bus.ensureStreams();
    this.relay = new OutboxRelay(ds, this.bus, config.databaseUrl, config.delivery.relayBatch, logger);
    await this.relay.start();
    const up = new UpHandler(ds, this.ops.registerEnrollment, this.ops.confirmRootKek, this.ops.applyReceipt, logger, (effect) => this.metrics?.receiptApplied(effect));
    this.upMessages = await this.bus.consumeUp((m) => up.handle(m));
    this.heartbeatSub = this.bus.connection.subscribe(subjects.heartbeatAll, {
      queue: 'keyhub-hub',
      callback: (err, msg) => {
        if (err) return;
        const listenerId = msg.subject.split('.').pop() ?? '';
        const decoded = decodeEnvelope(msg.data);
        if (!decoded.ok || !isEnvelopeOf(decoded.envelope, MESSAGE_TYPES.heartbeat)) return;
        const envelope = decoded.envelope;
        if (envelope.payload.listenerId !== listenerId) return;
        up.verifyFromListener(envelope, listenerId).then(
          () => this.seen.add(listenerId),
          (e: unknown) => logger.warn({ code: KeyhubError.from(e).code, listenerId }, 'heartbeat rejected'),
        );
      },
    });
    this.every('heartbeat_flush', 2_000, async () => {
      if (this.seen.size === 0) return;
      const ids = [...this.seen];
      this.seen.clear();
      await this.timed('heartbeat_flush', () => ds.query('UPDATE listeners SET last_seen_at = now() WHERE id = ANY($1)', [ids]));
    });
    this.every('resend', Math.max(1000, Math.min(5000, config.delivery.resendAfterSeconds * 500)), async () => {
      const r = await this.timed('resend', () => this.ops.resendDue.execute((ids) => this.bus.listenersWithBacklog(ids)));
      this.metrics?.resendHandled(r);
      if (r.reissued || r.failed) logger.info(r, 'unconfirmed packages handled');
    });
    this.every('checkpoint', config.audit.checkpointEverySeconds * 1000, async () => {
      const cp = await this.timed('checkpoint', () => writeCheckpoint(ds, this.ctx.keyring));
      if (cp) logger.info({ seq: cp.seq }, 'audit checkpoint signed');
    });
    this.phase = 'ok';
    logger.info({ fingerprint: this.ctx.keyring.fingerprint }, 'hub started');
  }

  /** Periodic work is mostly database work; timing it whole is what an operator sees as its latency. */
  private timed<T>(query: string, work: () => Promise<T>): Promise<T> {
    return this.metrics ? this.metrics.timeDb(query, work) : work();
  }

  private every(name: string, ms: number, task: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      const run = task()
        .catch((err: unknown) => {
          this.metrics?.taskFailed(name);
          this.ctx.logger.warn({ task: name, err: errorSummary(err) }, 'periodic task failed; will retry');
        })
        .finally(() => {
          busy = false;
          this.inFlight.delete(run);
        });
      this.inFlight.add(run);
    }, ms);
    this.timers.push(t);
  }

  async stop(): Promise<void> {
    this.phase = 'stopping';
    for (const t of this.timers) clearInterval(t);
    this.heartbeatSub?.unsubscribe();
    this.upMessages?.stop();
    await this.relay?.stop();
    // Let a resend or checkpoint that is under way commit before the database closes under it.
    await Promise.all([...this.inFlight]);
  }
}
