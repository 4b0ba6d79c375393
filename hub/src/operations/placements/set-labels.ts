import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { applyLabelChange, labelDelta } from '../../domain/label-selector';
import type { Principal } from '../../domain/principal';
import { listenerLabels, setListenerLabels } from '../../store/queries/placements';

/**
 * Sets and removes labels on a listener, with one audit event naming the
 * change. Rule: a label change is immediate, but it never widens a
 * sensitive key's reach by itself: the reconcile job pushes a sensitive key
 * to a newly matching site only if its placement was approved as covering
 * sites that match later; otherwise the widening becomes an approval
 * request (domain/policy-diff.ts). A site that stops matching loses the
 * keys its placements put there (destroy commands) at the next reconcile.
 */
@injectable()
export class SetListenerLabels {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, change: api.SetLabelsBody, principal: Principal): Promise<{ listenerId: string; labels: Record<string, string> }> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const row = await listenerLabels(m, listenerId, true);
      if (!row) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
      const labels = applyLabelChange(row.labels, change);
      if (Object.keys(labels).length > 32) throw new KeyhubError('INPUT_INVALID', 'a listener carries at most 32 labels');
      const delta = labelDelta(row.labels, labels);
      if (Object.keys(delta.set).length || delta.removed.length) {
        await setListenerLabels(m, listenerId, labels);
        await appendAudit(m, [
          {
            actor: principal.name,
            action: 'listener.labels',
            subject: `listener:${listenerId}`,
            details: {
              set: Object.entries(delta.set)
                .map(([k, v]) => `${k}=${v}`)
                .join(','),
              removed: delta.removed.join(','),
            },
          },
        ]);
      }
      return { listenerId, labels };
    });
  }
}
