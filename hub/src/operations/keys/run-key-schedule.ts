import { injectable } from 'tsyringe';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { KeyState } from '../../domain/key-lifecycle';
import { SYSTEM_ACTORS } from '../../domain/principal';
import { claimDueActivations, claimDueDeactivations, dueRotations, keysByIds, scheduledWorkDue, type DueVersion } from '../../store/queries/key-lifecycle';
import { RotateKey } from './rotate-key';
import { writeTransitions } from './version-transition';

/** Keys rotated per transaction by the scheduler. */
const ROTATION_BATCH = 50;

export interface ScheduleRun {
  activated: number;
  deactivated: number;
  rotated: number;
}

/**
 * The key lifecycle's scheduled transitions (domain/key-lifecycle.ts), run
 * by every hub replica's scheduler: pre-activation versions whose
 * activation date has come become active; active or suspended versions
 * whose deactivation date has come (end of cryptoperiod, or of a rotation's
 * grace period) become deactivated, and the sites that hold them are told
 * (queueKeyCommands, deactivate); keys whose rotation interval has passed
 * get a new version (RotateKey). Rule: each transition happens exactly once
 * however many replicas run: due rows are claimed FOR UPDATE SKIP LOCKED and
 * changed only from the state they were claimed in, in the transaction that
 * writes the audit event and the site commands.
 */
@injectable()
export class RunKeySchedule {
  constructor(
    private readonly ctx: HubContext,
    private readonly rotateKey: RotateKey,
  ) {}

  async execute(limit = 500): Promise<ScheduleRun> {
    const due = await scheduledWorkDue(this.ctx.ds);
    const activated = due.activations ? await this.transitions('active', limit) : 0;
    const deactivated = due.deactivations ? await this.transitions('deactivated', limit) : 0;
    const rotated = await this.rotations(limit);
    return { activated, deactivated, rotated };
  }

  private async transitions(to: KeyState, limit: number): Promise<number> {
    return this.ctx.ds.transaction(async (m) => {
      // The chain first, then the version rows: the lock order of every writer.
      await lockAuditChain(m);
      const due: DueVersion[] = to === 'active' ? await claimDueActivations(m, limit) : await claimDueDeactivations(m, limit);
      if (due.length === 0) return 0;
      const reason = to === 'active' ? 'activation date reached' : 'deactivation date reached (end of cryptoperiod or of a rotation grace period)';
      await writeTransitions(
        m,
        due.map((d) => ({ versionId: d.id, keyId: d.key_id, keyName: d.name, version: d.version, from: d.state as KeyState, to, reason, dueAt: new Date(d.at) })),
        SYSTEM_ACTORS.scheduler,
      );
      return due.length;
    });
  }

  /** Due keys in batches: each batch is one HSM signing batch and one transaction, whose size the sites per key multiply. */
  private async rotations(limit: number): Promise<number> {
    const ids = await dueRotations(this.ctx.ds, limit);
    let rotated = 0;
    for (let i = 0; i < ids.length; i += ROTATION_BATCH) {
      const keys = await keysByIds(this.ctx.ds, ids.slice(i, i + ROTATION_BATCH));
      rotated += (await this.rotateKey.rotate(keys, SYSTEM_ACTORS.scheduler, { onlyIfDue: true })).length;
    }
    return rotated;
  }
}
