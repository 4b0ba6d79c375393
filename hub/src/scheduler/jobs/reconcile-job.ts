import type { Logger } from '@keyhub/shared';
import type { HubContext } from '../../context';
import { DualControl } from '../../operations/approvals/dual-control';
import { Distribute } from '../../operations/distributions/distribute';
import { HealDrift } from '../../operations/inventory/heal-drift';
import { ProcessInventory } from '../../operations/inventory/process-inventory';
import { RecordInventory } from '../../operations/inventory/record-inventory';
import { ScanAndHeal } from '../../operations/inventory/scan-and-heal';
import { ScanDrift } from '../../operations/inventory/scan-drift';
import { ReconcilePlacements } from '../../operations/placements/reconcile-placements';
import type { Job } from '../scheduler';
import { untimed, type TimeJob } from './timing';

/**
 * Keeps distribution policies true (ReconcilePlacements) every
 * `placements.reconcileSeconds`, and scans every site's inventory for drift
 * (ScanAndHeal over all sites) every `placements.driftScanSeconds`. Safe in
 * several replicas: reconcile runs under an advisory lock (a replica that
 * does not get it skips its turn), scans are serialized by another.
 */
export class ReconcileJob implements Job {
  readonly name = 'reconcile';
  readonly intervalMs: number;
  private lastScan = 0;

  constructor(
    private readonly reconcile: ReconcilePlacements,
    private readonly scanAndHeal: ScanAndHeal,
    private readonly scanEveryMs: number,
    reconcileSeconds: number,
    private readonly logger: Logger,
    private readonly time: TimeJob = untimed,
  ) {
    this.intervalMs = reconcileSeconds * 1000;
  }

  async run(): Promise<void> {
    const r = await this.time(this.name, () => this.reconcile.execute());
    if (r.queued || r.removed || r.approvalsRequested) this.logger.info(r, 'placements reconciled');
    if (Date.now() - this.lastScan < this.scanEveryMs) return;
    this.lastScan = Date.now();
    const s = await this.time('drift_scan', () => this.scanAndHeal.execute(null));
    if (s.scan.fresh.length || s.scan.resolved) this.logger.info({ counts: s.scan.counts, fresh: s.scan.fresh.length, resolved: s.scan.resolved, heal: s.heal }, 'drift scan');
  }
}

/** The job and the inventory processor, wired from the hub context (HubService has no container). */
export function placementServices(ctx: HubContext, time: TimeJob = untimed): { job: ReconcileJob; processInventory: ProcessInventory } {
  const scanAndHeal = new ScanAndHeal(new ScanDrift(ctx), new HealDrift(ctx));
  const reconcile = new ReconcilePlacements(ctx, new DualControl(ctx), new Distribute(ctx));
  const { placements } = ctx.config;
  return {
    job: new ReconcileJob(reconcile, scanAndHeal, placements.driftScanSeconds * 1000, placements.reconcileSeconds, ctx.logger, time),
    processInventory: new ProcessInventory(new RecordInventory(ctx), scanAndHeal),
  };
}
