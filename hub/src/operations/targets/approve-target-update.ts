import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { ListenerEntity, type ListenerTarget } from '../../store/entities';
import { lockRequestedTargetUpdate, retireTargetDistributions, revokeTargetKeks, setTargetUpdateApproved, type TargetUpdateRow } from '../../store/queries/target-updates';
import { summary } from './register-target-update';

/**
 * `keyhub listener target approve-update <listener> <target> --update ID`:
 * an operator approves a site's signed target update (issue 12). Rules:
 * - the approval names the update it approves (its id, shown with the
 *   settings the site sent): an update replaced meanwhile is not approved
 *   (TARGET_UPDATE_NOT_FOUND);
 * - an addition makes the target one the site receives on, with its kind
 *   (a key reaches it only if its policy allows that kind);
 * - a removal takes it off the site's targets (pushes to it are refused,
 *   placements stop matching it), retires its distributions still in flight
 *   or failed, and revokes its own KEKs; all audited in the same transaction.
 * Under the `listener.target_update` policy the approval is a dual-control
 * request first (request-target-update-approval.ts), run through executeIn.
 */
@injectable()
export class ApproveTargetUpdate {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, target: string, updateId: string, actor: string): Promise<api.ApproveTargetUpdateResult> {
    return this.ctx.ds.transaction((m) => this.executeIn(m, listenerId, target, updateId, actor, []));
  }

  /** The update awaiting approval for a target, checked against the id the operator named (for a dual-control request). */
  async pending(m: EntityManager, listenerId: string, target: string, updateId: string): Promise<TargetUpdateRow> {
    const row = await lockRequestedTargetUpdate(m, listenerId, target);
    if (!row || row.id !== updateId) throw new KeyhubError('TARGET_UPDATE_NOT_FOUND', `no update ${updateId} awaiting approval for target ${target} of ${listenerId}`);
    return row;
  }

  /** In the caller's transaction (also the approved-action runner's). */
  async executeIn(m: EntityManager, listenerId: string, target: string, updateId: string, actor: string, approvers: string[]): Promise<api.ApproveTargetUpdateResult> {
    const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
    if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
    if (listener.state !== 'active') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${listener.state}`);
    const row = await this.pending(m, listenerId, target, updateId);
    const others = listener.targets.filter((t) => t.name !== target);
    let retired = { distributions: 0, keks: 0 };
    let targets: ListenerTarget[];
    if (row.op === 'add') {
      targets = [...others, { name: target, kind: row.kind }];
    } else {
      if (others.length === listener.targets.length) throw new KeyhubError('TARGET_UNKNOWN', `listener ${listenerId} has no target ${target} to remove`);
      targets = others;
      retired = { distributions: await retireTargetDistributions(m, listenerId, target), keks: await revokeTargetKeks(m, listenerId, target) };
    }
    await m.update(ListenerEntity, { id: listenerId }, { targets });
    await setTargetUpdateApproved(m, row.id, actor);
    const who: Record<string, string> = approvers.length ? { approvers: approvers.join(',') } : {};
    await appendAudit(m, [
      {
        actor,
        action: row.op === 'add' ? 'target.added' : 'target.removed',
        subject: `listener:${listenerId}`,
        details: { updateId: row.id, target, kind: row.kind, settings: summary(row.settings), ...(row.op === 'remove' ? retired : {}), ...who },
      },
    ]);
    return { listenerId, target, op: row.op, kind: row.kind, retired };
  }
}
