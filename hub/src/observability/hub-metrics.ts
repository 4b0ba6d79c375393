import type { DataSource } from 'typeorm';
import { collectProcessMetrics, Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, timed, type Logger, type Registry } from '@keyhub/shared';
import { DISTRIBUTION_STATES } from '../domain/distribution-state';
import { countDistributionsByState } from '../store/queries/distributions';
import { DRIFT_KINDS } from '../domain/drift';
import { countFindingsByKind } from '../store/queries/drift';
import { listenerBacklogs } from '../store/queries/listeners';
import { countOutbox } from '../store/queries/outbox';

/** Several gauges are collected in one scrape; they share one round of queries within this window. */
const SNAPSHOT_REUSE_MS = 1_000;

interface Snapshot {
  distributions: Map<string, number>;
  listeners: Array<{ id: string; backlog: number; lastSeen: number | null }>;
  outboxPending: number;
}

/**
 * The hub's metrics. Anything about the state of deliveries is read from
 * PostgreSQL when Prometheus scrapes, so every replica reports the same
 * truth; only what happens inside this process (receipts it applied, its
 * queries, its HSM calls) is counted here.
 */
export class HubMetrics {
  private readonly dbSeconds: Histogram<'query' | 'outcome'>;
  private readonly receipts: Counter<'effect'>;
  private readonly resends: Counter<'result'>;
  private readonly taskFailures: Counter<'task'>;
  private snapshot?: { at: number; value: Promise<Snapshot> };
  private scrapeFailing = false;

  constructor(
    readonly registry: Registry,
    private readonly ds: DataSource,
    private readonly logger: Logger,
  ) {
    collectProcessMetrics(registry);
    const registers = [registry];
    this.dbSeconds = new Histogram({
      name: 'keyhub_db_query_seconds',
      help: 'Duration of hub database work: scrape queries and periodic tasks (resend, heartbeat flush, checkpoint)',
      labelNames: ['query', 'outcome'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.receipts = new Counter({ name: 'keyhub_receipts_applied_total', help: 'Listener receipts applied by this hub process, by effect', labelNames: ['effect'], registers });
    this.resends = new Counter({
      name: 'keyhub_resend_total',
      help: 'Unconfirmed packages handled by this hub process: reissued, or failed after the last attempt',
      labelNames: ['result'],
      registers,
    });
    this.taskFailures = new Counter({ name: 'keyhub_periodic_task_failures_total', help: 'Periodic hub tasks that failed and will be retried', labelNames: ['task'], registers });

    this.scrapedGauge('keyhub_distributions', 'Distributions (one key version to one listener target) by state, across all hub replicas', ['state'], (g, s) => {
      for (const state of new Set([...DISTRIBUTION_STATES, ...s.distributions.keys()])) g.set({ state }, s.distributions.get(state) ?? 0);
    });
    this.scrapedGauge('keyhub_listener_backlog', 'Distributions queued or sent but not yet confirmed or failed, per listener', ['listener'], (g, s) => {
      for (const l of s.listeners) g.set({ listener: l.id }, l.backlog);
    });
    this.scrapedGauge('keyhub_listener_last_heartbeat_seconds', 'Unix time of the last verified heartbeat from each listener (absent if never heard from)', ['listener'], (g, s) => {
      for (const l of s.listeners) if (l.lastSeen !== null) g.set({ listener: l.id }, l.lastSeen);
    });
    this.scrapedGauge('keyhub_outbox_pending', 'Committed messages not yet published to NATS', [], (g, s) => g.set(s.outboxPending));
    // Its own query, not part of the shared snapshot: drift is read from drift_findings, every replica the same.
    const drift: Gauge<'kind'> = new Gauge<'kind'>({
      name: 'keyhub_drift_items',
      help: 'Open drift findings across all sites (missing, extra, kcv_mismatch, state_mismatch), from the latest signed inventories',
      labelNames: ['kind'],
      registers,
      collect: async () => {
        const rows = await this.timeDb('scrape_drift', () => countFindingsByKind(this.ds)).catch(() => undefined);
        drift.reset();
        if (rows) for (const kind of DRIFT_KINDS) drift.set({ kind }, rows.find((r) => r.kind === kind)?.n ?? 0);
      },
    });
  }

  /** A gauge refilled from the database snapshot at every scrape. */
  private scrapedGauge<L extends string>(name: string, help: string, labelNames: L[], fill: (gauge: Gauge<L>, s: Snapshot) => void): void {
    const gauge: Gauge<L> = new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: async () => {
        const s = await this.read();
        // Series of listeners that were revoked (or of a database that stopped answering) must not linger.
        gauge.reset();
        if (s) fill(gauge, s);
      },
    });
  }

  receiptApplied(effect: string): void {
    this.receipts.inc({ effect });
  }

  resendHandled(r: { reissued: number; failed: number }): void {
    if (r.reissued) this.resends.inc({ result: 'reissued' }, r.reissued);
    if (r.failed) this.resends.inc({ result: 'failed' }, r.failed);
  }

  taskFailed(task: string): void {
    this.taskFailures.inc({ task });
  }

  timeDb<T>(query: string, work: () => Promise<T>): Promise<T> {
    return timed(this.dbSeconds, { query }, work);
  }

  /**
   * Undefined when the database did not answer: the gauges then go absent,
   * which alerts can see, rather than repeating numbers that may be stale.
   */
  private async read(): Promise<Snapshot | undefined> {
    const now = Date.now();
    if (!this.snapshot || now - this.snapshot.at > SNAPSHOT_REUSE_MS) this.snapshot = { at: now, value: this.query() };
    try {
      const s = await this.snapshot.value;
      this.scrapeFailing = false;
      return s;
    } catch (err) {
      if (!this.scrapeFailing)
        this.logger.warn({ code: (err as { code?: unknown }).code, detail: err instanceof Error ? err.message : String(err) }, 'metrics: database did not answer; delivery gauges left out');
      this.scrapeFailing = true;
      return undefined;
    }
  }

  private async query(): Promise<Snapshot> {
    const [distributions, listeners, outbox] = await Promise.all([
      this.timeDb('scrape_distributions', () => countDistributionsByState(this.ds)),
      this.timeDb('scrape_listeners', () => listenerBacklogs(this.ds)),
      this.timeDb('scrape_outbox', () => countOutbox(this.ds)),
    ]);
    return {
      distributions: new Map(distributions.map((r) => [r.state, Number(r.n)])),
      listeners: listeners.map((r) => ({ id: r.id, backlog: Number(r.backlog), lastSeen: r.last_seen === null ? null : Number(r.last_seen) })),
      outboxPending: Number(outbox[0]?.n ?? 0),
    };
  }
}
