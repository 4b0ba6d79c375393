import { KeyhubError } from '@keyhub/shared';
import type { ConsumerMessages, Subscription } from 'nats';
import { subjects } from '@keyhub/protocol';
import { HeartbeatHandler } from '../bus/heartbeat-handler';
import type { HubBus } from '../bus/hub-bus';
import { UpHandler } from '../bus/up-handler';
import type { HubContext } from '../context';
import type { HubMetrics } from '../observability/hub-metrics';
import { WriteCheckpoint } from '../operations/audit/write-checkpoint';
import { ApplyCommandReceipt } from '../operations/commands/apply-command-receipt';
import { ResendCommands } from '../operations/commands/resend-commands';
import type { ApplyReceipt } from '../operations/distributions/apply-receipts';
import type { ResendDue } from '../operations/distributions/resend-due';
import type { ConfirmRootKek } from '../operations/listeners/confirm-root-kek';
import { RotateKey } from '../operations/keys/rotate-key';
import { RunKeySchedule } from '../operations/keys/run-key-schedule';
import { FinishDecommission } from '../operations/listeners/finish-decommission';
import { RecordHeartbeats } from '../operations/listeners/record-heartbeats';
import { SiteStreamCleanups } from '../operations/listeners/site-stream-cleanups';
import type { RegisterEnrollment } from '../operations/listeners/register-enrollment';
import { VerifyListenerSignature } from '../operations/listeners/verify-listener-signature';
import { OutboxRelay } from '../relay/outbox-relay';
import { ConfirmTargetKek } from '../operations/targets/confirm-target-kek';
import { RegisterTargetKekRequest } from '../operations/targets/register-target-kek-request';
import { RegisterTargetUpdate } from '../operations/targets/register-target-update';
import { CheckpointJob } from '../scheduler/jobs/checkpoint-job';
import { verifyAuditForDashboard } from '../operations/dashboard/audit-verdict';
import { CommandResendJob } from '../scheduler/jobs/command-resend-job';
import { HeartbeatFlushJob } from '../scheduler/jobs/heartbeat-flush-job';
import { KeyLifecycleJob } from '../scheduler/jobs/key-lifecycle-job';
import { placementServices } from '../scheduler/jobs/reconcile-job';
import { ResendJob } from '../scheduler/jobs/resend-job';
import { SiteLifecycleJob } from '../scheduler/jobs/site-lifecycle-job';
import { untimed, type TimeJob } from '../scheduler/jobs/timing';
import { Scheduler } from '../scheduler/scheduler';

/**
 * `keyhub serve`: the long-running hub. Starts the outbox relay, the UP
 * consumer and heartbeat subscription (bus adapters), and the periodic jobs.
 * Every part is safe to run in several replicas at once (SKIP LOCKED claims,
 * a shared durable consumer, idempotent checkpoints), so there is no leader
 * to elect.
 */
export class HubService {
  private relay?: OutboxRelay;
  private upMessages?: ConsumerMessages;
  private heartbeatSub?: Subscription;
  private scheduler?: Scheduler;
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
    const { ds, config, logger, keyring } = this.ctx;
    await this.bus.ensureStreams();
    this.relay = new OutboxRelay(ds, this.bus, config.databaseUrl, config.delivery.relayBatch, logger);
    await this.relay.start();
    const verifySignature = new VerifyListenerSignature(ds);
    const up = new UpHandler(
      verifySignature,
      this.ops.registerEnrollment,
      this.ops.confirmRootKek,
      this.ops.applyReceipt,
      logger,
      (effect) => this.metrics?.receiptApplied(effect),
      async (listenerId) => {
        const purged = await this.bus.purgeOneTimeMessages(listenerId);
        logger.info({ listenerId, purged }, 'root KEK and credentials messages removed from the stream');
      },
      new ApplyCommandReceipt(ds),
    );
    const placements = placementServices(this.ctx, (name, work) => this.metrics?.timeDb(name, work) ?? work());
    up.processInventory = placements.processInventory;
    up.targetKeks = { register: new RegisterTargetKekRequest(this.ctx), confirm: new ConfirmTargetKek(this.ctx) };
    up.targetUpdates = new RegisterTargetUpdate(this.ctx);
    this.upMessages = await this.bus.consumeUp((m) => up.handle(m));
    const heartbeats = new HeartbeatHandler(verifySignature, logger);
    this.heartbeatSub = this.bus.connection.subscribe(subjects.heartbeatAll, {
      queue: 'keyhub-hub',
      callback: (err, msg) => {
        if (!err) heartbeats.handle(msg);
      },
    });
    const metrics = this.metrics;
    const time: TimeJob = metrics ? (name, work) => metrics.timeDb(name, work) : untimed;
    const scheduler = new Scheduler(logger, (job) => this.metrics?.taskFailed(job));
    scheduler.add(new HeartbeatFlushJob(() => heartbeats.takeSeen(), new RecordHeartbeats(ds), time));
    scheduler.add(
      new ResendJob(
        this.ops.resendDue,
        (ids) => this.bus.listenersWithBacklog(ids),
        config.delivery.resendAfterSeconds,
        logger,
        (r) => this.metrics?.resendHandled(r),
        time,
      ),
    );
    scheduler.add(new CommandResendJob(new ResendCommands(ds, config.delivery), (ids) => this.bus.listenersWithBacklog(ids), config.delivery.resendAfterSeconds, logger, time));
    scheduler.add(placements.job);
    scheduler.add(new CheckpointJob(new WriteCheckpoint(ds, keyring), config.audit.checkpointEverySeconds, logger, time));
    scheduler.add(new SiteLifecycleJob(new FinishDecommission(this.ctx), new SiteStreamCleanups(this.ctx), (id, what) => this.bus.cleanSiteStream(id, what), logger));
    scheduler.add(new KeyLifecycleJob(new RunKeySchedule(this.ctx, new RotateKey(this.ctx)), config.keyLifecycle.intervalMs, logger, time));
    this.scheduler = scheduler;
    this.phase = 'ok';
    logger.info({ fingerprint: keyring.fingerprint }, 'hub started');
    // The dashboard's audit verdict hashes the whole chain once per process, then only what is appended:
    // done now, in the background, so that the first auditor to open the trail does not wait for it.
    void verifyAuditForDashboard(ds, keyring.signingSpki).catch((err: unknown) =>
      logger.warn({ code: KeyhubError.from(err).code }, 'audit chain warm-up failed; the dashboard verifies on its first view'),
    );
  }

  async stop(): Promise<void> {
    this.phase = 'stopping';
    // Timers first: no new run starts while the rest stops; runs under way are awaited last.
    const stopping = this.scheduler?.stop();
    this.heartbeatSub?.unsubscribe();
    this.upMessages?.stop();
    await this.relay?.stop();
    // Let a resend or checkpoint that is under way commit before the database closes under it.
    await stopping;
  }
}
