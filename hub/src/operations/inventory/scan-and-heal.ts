import { injectable } from 'tsyringe';
import { HealDrift, type HealResult } from './heal-drift';
import { ScanDrift, type DriftScanResult } from './scan-drift';

/**
 * A drift scan of some sites (null: every site with an inventory), then
 * healing of what it found new: findings seen before are not healed again
 * by every scan (a heal that could not be carried out stays visible instead
 * of being retried in a loop).
 */
@injectable()
export class ScanAndHeal {
  constructor(
    private readonly scan: ScanDrift,
    private readonly heal: HealDrift,
  ) {}

  async execute(listenerIds: string[] | null): Promise<{ scan: DriftScanResult; heal: HealResult }> {
    const scan = await this.scan.execute(listenerIds);
    const heal = scan.fresh.length ? await this.heal.execute(scan.fresh) : { repushed: 0, commands: 0, reportedOnly: 0 };
    return { scan, heal };
  }
}
