import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { Distribute, type DistributeResult } from './distribute';
import { resolveDestinations, resolveKeys } from './distribute-selection';

/**
 * An operator's distribute call. When it names a sensitive key and the
 * `distribution.sensitive` policy is on, nothing is queued: the call becomes
 * a request naming the exact key versions (with their KCVs) and the exact
 * listener/target pairs, so an approval covers neither another version nor
 * a site added later. Otherwise it runs at once.
 */
@injectable()
export class RequestDistribution implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly distribute: Distribute,
  ) {}

  async execute(body: api.DistributeBody, principal: Principal): Promise<DistributeResult | { approval: api.ApprovalRequestView }> {
    const keys = body.keyPrefix !== undefined ? { prefix: body.keyPrefix } : body.keys!;
    const to = body.to === 'all' ? 'all' : body.to;
    const m = this.ctx.ds.manager;
    const selected = await resolveKeys(m, keys);
    if (selected.some((s) => s.key.sensitive) && (await this.dualControl.requiredFor(m, 'distribution.sensitive')) > 0) {
      const destinations = await resolveDestinations(m, to);
      if (destinations.length === 0) throw new KeyhubError('INPUT_INVALID', 'no destination to distribute to');
      const doc: ActionDocument = {
        action: 'distribution.sensitive',
        keys: selected.map((s) => ({ name: s.key.name, version: s.version.version, kcv: s.version.kcv, sensitive: s.key.sensitive })),
        destinations,
      };
      return this.ctx.ds.transaction(async (tx) => {
        await lockAuditChain(tx);
        // Read again under the lock: the policy may have been switched off or on meanwhile.
        const required = await this.dualControl.requiredFor(tx, 'distribution.sensitive');
        return { approval: await this.dualControl.open(tx, doc, Math.max(required, 1), principal) };
      });
    }
    return this.distribute.execute({ keys, to, actor: principal.name });
  }

  async runAfterCommit(doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'distribution.sensitive') throw new KeyhubError('INTERNAL', 'not a distribution request');
    const result = await this.distribute.execute({
      keys: doc.keys.map((k) => ({ name: k.name, version: k.version })),
      to: doc.destinations,
      actor: run.requester.name,
    });
    // The approved KCVs must be the ones distributed: a version row changed behind the API would show here.
    for (const k of result.keys) {
      const approved = doc.keys.find((a) => a.name === k.name && a.version === k.version);
      if (!approved || approved.kcv !== k.kcv) throw new KeyhubError('APPROVAL_HASH_MISMATCH', `key ${k.name} version ${k.version} is not what was approved`);
    }
    return { queued: result.queued.length, skipped: result.skipped.length };
  }
}
