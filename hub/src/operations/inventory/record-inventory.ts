import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { InventoryReport } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { dropStaleParts, insertInventoryItems, insertInventoryPart, lockListenerInventory, newestPendingReport, promoteReport, reportProgress } from '../../store/queries/inventories';

/** A report taken further back than this, or this far in the future, is refused: a replayed old report must not pass for today's. */
export const INVENTORY_MAX_AGE_MS = 24 * 3600_000;
export const INVENTORY_MAX_SKEW_MS = 5 * 60_000;

export type InventoryOutcome = 'stored' | 'complete' | 'duplicate';

/**
 * Stores one part of a listener's signed inventory (the UP handler has
 * verified the signature against the listener's identity key and that the
 * subject is the listener's own). Rules: only an active listener's report
 * counts; a report must be newer than the one the hub holds (a replay of an
 * older, genuinely signed one changes nothing); a part seen before is a
 * redelivery; one report arrives at a time (a part older than the report
 * in progress is refused, a newer one drops the unfinished older one, so
 * unfinished reports cannot pile up); when the last part is in, the report
 * becomes the listener's inventory in the same transaction. No audit event: an inventory changes
 * no state the operators own; the drift it reveals is audited.
 */
@injectable()
export class RecordInventory {
  constructor(private readonly ctx: HubContext) {}

  async execute(report: InventoryReport, now = new Date()): Promise<InventoryOutcome> {
    const takenAt = new Date(report.takenAt);
    if (takenAt.getTime() > now.getTime() + INVENTORY_MAX_SKEW_MS || takenAt.getTime() < now.getTime() - INVENTORY_MAX_AGE_MS) {
      throw new KeyhubError('INVENTORY_STALE', `inventory ${report.reportId} was taken at ${report.takenAt}, outside the freshness window`);
    }
    return this.ctx.ds.transaction(async (m) => {
      const listener = await lockListenerInventory(m, report.listenerId);
      if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${report.listenerId}`);
      // Approved, its root-KEK confirmation still on the way (it travels beside the first report): worth another delivery.
      if (listener.state === 'approved') throw new KeyhubError('INVENTORY_EARLY', `listener ${report.listenerId} has not confirmed its root KEK yet`);
      if (listener.state !== 'active') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${report.listenerId} is ${listener.state}`);
      if (listener.report_id === report.reportId) return 'duplicate';
      if (listener.taken_at && listener.taken_at.getTime() >= takenAt.getTime()) {
        throw new KeyhubError('INVENTORY_STALE', `inventory ${report.reportId} is not newer than the one held (taken ${listener.taken_at.toISOString()})`);
      }
      // One report in progress per listener: an older one is refused, a newer one replaces what was arriving.
      // Otherwise parts of reports that never complete (each one within the bounds) would pile up without end.
      const pending = await newestPendingReport(m, report.listenerId, report.reportId);
      if (pending && pending.getTime() >= takenAt.getTime()) {
        throw new KeyhubError('INVENTORY_STALE', `inventory ${report.reportId} is not newer than the report still arriving (taken ${pending.toISOString()})`);
      }
      if (pending) await dropStaleParts(m, report.listenerId, takenAt);
      const fresh = await insertInventoryPart(m, { listenerId: report.listenerId, reportId: report.reportId, part: report.part, of: report.of, takenAt, targets: report.targets });
      if (!fresh) return 'duplicate';
      await insertInventoryItems(
        m,
        report.listenerId,
        report.reportId,
        report.items.map((i) => ({ target: i.target, objectId: i.objectId, keyId: i.keyId ?? null, version: i.version ?? null, label: i.label, kcv: i.kcv ?? null, state: i.state })),
      );
      const progress = await reportProgress(m, report.listenerId, report.reportId);
      if (!progress.consistent || progress.received < progress.of) return 'stored';
      await promoteReport(m, { listenerId: report.listenerId, reportId: report.reportId, takenAt, targets: report.targets });
      await dropStaleParts(m, report.listenerId, takenAt);
      return 'complete';
    });
  }
}
