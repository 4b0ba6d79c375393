import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { TargetUpdate } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { ListenerEntity } from '../../store/entities';
import { insertTargetUpdate, supersedeTargetUpdates, targetUpdateByRequest } from '../../store/queries/target-updates';

export type TargetUpdateRegistration = { outcome: 'recorded' | 'already_recorded'; updateId: string };

/**
 * A site adds or removes a target after enrollment (issue 12), by an update
 * signed with its identity key (checked by the UP handler before this runs).
 * Rule: the update changes nothing but its own row: the target receives
 * nothing until an operator approves the update
 * (approve-target-update.ts), and a removed target keeps receiving until
 * the removal is approved. Only an active site sends updates; a removal
 * names a target the site has (TARGET_UNKNOWN), an addition one it has not
 * in that kind (an addition of a target it has with the same kind changes
 * nothing). The same signed update delivered twice is recorded once; a
 * newer one for the same target replaces one still awaiting approval.
 */
@injectable()
export class RegisterTargetUpdate {
  constructor(private readonly ctx: HubContext) {}

  async execute(msg: TargetUpdate): Promise<TargetUpdateRegistration> {
    return this.ctx.ds.transaction(async (m) => {
      const listener = await m.findOne(ListenerEntity, { where: { id: msg.listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${msg.listenerId}`);
      const known = await targetUpdateByRequest(m, msg.id);
      if (known) return { outcome: 'already_recorded', updateId: known.id };
      const current = listener.targets.find((t) => t.name === msg.target);
      if (msg.op === 'remove' && !current) throw new KeyhubError('TARGET_UNKNOWN', `listener ${msg.listenerId} has no target ${msg.target} to remove`);
      if (listener.state !== 'active') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${msg.listenerId} is ${listener.state}; only an active site updates its targets`);
      if (msg.op === 'add' && current?.kind === msg.kind) throw new KeyhubError('INPUT_INVALID', `target ${msg.target} of ${msg.listenerId} is already a ${msg.kind} target`);
      await supersedeTargetUpdates(m, msg.listenerId, msg.target);
      const id = randomUUID();
      await insertTargetUpdate(m, { id, listenerId: msg.listenerId, requestId: msg.id, op: msg.op, target: msg.target, kind: msg.kind, settings: msg.settings });
      const actor = `listener:${msg.listenerId}`;
      await appendAudit(m, [
        {
          actor,
          action: 'target.update_requested',
          subject: actor,
          details: { updateId: id, op: msg.op, target: msg.target, kind: msg.kind, settings: summary(msg.settings), ...(current && current.kind !== msg.kind ? { replacesKind: current.kind } : {}) },
        },
      ]);
      return { outcome: 'recorded', updateId: id };
    });
  }
}

/** The settings summary as one audit detail: non-secret by contract (protocol/src/messages/target-keks.ts), bounded by its schema. */
export function summary(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
}
