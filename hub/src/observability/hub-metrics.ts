import type { DataSource } from 'typeorm';
import { collectProcessMetrics, Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, timed, type Logger, type Registry } from '@keyhub/shared';
import type { DistributionState } from '../store/entities/distribution.entity';

/** Listed so that a state nobody is in reads 0 instead of disappearing. */
const DISTRIBUTION_STATES: readonly DistributionState[] = ['queued', 'sent', 'confirmed', 'failed', 'superseded'];

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
      if (!this.scrapeFailing) this.logger.warn({ code: (err as { code?: unknown }).code, detail: err instanceof Error ? err.message : String(err) }, 'metrics: database did not answer; delivery gauges left out');
      this.scrapeFailing = true;
      return undefined;
    }
  }

  private async query(): Promise<Snapshot> {
    const [distributions, listeners, outbox] = await Promise.all([
      this.timeDb('scrape_distributions', (): Promise<Array<{ state: string; n: string }>> => this.ds.query('SELECT state, count(*) AS n FROM distributions GROUP BY state')),
      this.timeDb('scrape_listeners', (): Promise<Array<{ id: string; backlog: string; last_seen: number | null }>> =>
        this.ds.query(
          `SELECT l.id, coalesce(b.n, 0) AS backlog, extract(epoch FROM l.last_seen_at)::float8 AS last_seen
             FROM listeners l
             LEFT JOIN (SELECT listener_id, count(*) AS n FROM distributions WHERE confirmed_at IS NULL AND state IN ('queued', 'sent') GROUP BY listener_id) b ON b.listener_id = l.id
            WHERE l.state <> 'revoked'`,
        ),
      ),
      this.timeDb('scrape_outbox', (): Promise<Array<{ n: string }>> => this.ds.query('SELECT count(*) AS n FROM outbox')),
    ]);
    return {
      distributions: new Map(distributions.map((r) => [r.state, Number(r.n)])),
      listeners: listeners.map((r) => ({ id: r.id, backlog: Number(r.backlog), lastSeen: r.last_seen === null ? null : Number(r.last_seen) })),
      outboxPending: Number(outbox[0]?.n ?? 0),
    };
  }
}
