import { injectable } from 'tsyringe';
import type { InventoryReport } from '@keyhub/protocol';
import type { HealResult } from './heal-drift';
import { RecordInventory, type InventoryOutcome } from './record-inventory';
import type { DriftScanResult } from './scan-drift';
import { ScanAndHeal } from './scan-and-heal';

export interface InventoryProcessed {
  outcome: InventoryOutcome;
  scan?: DriftScanResult;
  heal?: HealResult;
}

/**
 * An inventory part has arrived (signature verified by the UP handler): it
 * is stored, and when it completes a report, that site is scanned for drift
 * at once and what is new is healed. The same scan-and-heal runs over every
 * site in the reconcile job (ScanAndHeal over every site).
 */
@injectable()
export class ProcessInventory {
  constructor(
    private readonly record: RecordInventory,
    private readonly scanAndHeal: ScanAndHeal,
  ) {}

  async execute(report: InventoryReport): Promise<InventoryProcessed> {
    const outcome = await this.record.execute(report);
    if (outcome !== 'complete') return { outcome };
    return { outcome, ...(await this.scanAndHeal.execute([report.listenerId])) };
  }
}
