import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { kindsOf } from '../../domain/target-policy';
import { Distribute, type Destination, type DistributeResult, type KeySelector } from './distribute';
import { allowedDestinations, resolveDestinations, resolveKeys } from './distribute-selection';

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
      const resolved = await resolveDestinations(m, to);
      if (resolved.length === 0) throw new KeyhubError('INPUT_INVALID', 'no destination to distribute to');
      // The same policy filter as a direct distribute (issue 12): a named target a key's policy refuses is
      // refused before anyone is asked; "every target" means the allowed ones. The document lists only
      // destinations some key may reach, each with its kind, and each key with the kinds it may reach, so
      // the approver reads exactly the (key, target) pairs that will run.
      const reach = new Set(selected.flatMap((s) => allowedDestinations(s.key, resolved)).map(pairKey));
      const destinations = resolved.filter((d) => reach.has(pairKey(d))).map((d) => ({ listenerId: d.listenerId, target: d.target, kind: d.kind }));
      const doc: ActionDocument = {
        action: 'distribution.sensitive',
        keys: selected.map((s) => ({ name: s.key.name, version: s.version.version, kcv: s.version.kcv, sensitive: s.key.sensitive, targetKinds: kindsOf(s.key) })),
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
    // Each key goes to the destinations whose kind its approved policy allows; keys that reach the same
    // destinations go in one call. (A document without kinds, made before issue 12: every key everywhere.)
    const groups = new Map<string, { keys: KeySelector[]; to: Destination[] }>();
    for (const k of doc.keys) {
      const to = doc.destinations.filter((d) => k.targetKinds === undefined || d.kind === undefined || k.targetKinds.includes(d.kind)).map((d) => ({ listenerId: d.listenerId, target: d.target }));
      if (to.length === 0) throw new KeyhubError('INTERNAL', `the request names no destination key ${k.name} may reach`);
      const sig = to.map(pairKey).join('\n');
      const g = groups.get(sig) ?? { keys: [], to };
      g.keys.push({ name: k.name, version: k.version });
      groups.set(sig, g);
    }
    const result: DistributeResult = { keys: [], queued: [], skipped: [] };
    for (const g of groups.values()) {
      // Checked again against the policies as they are now: one narrowed meanwhile refuses (TARGET_KIND_NOT_ALLOWED).
      const r = await this.distribute.execute({ keys: g.keys, to: g.to, actor: run.requester.name });
      result.keys.push(...r.keys);
      result.queued.push(...r.queued);
      result.skipped.push(...r.skipped);
    }
    // The approved KCVs must be the ones distributed: a version row changed behind the API would show here.
    for (const k of result.keys) {
      const approved = doc.keys.find((a) => a.name === k.name && a.version === k.version);
      if (!approved || approved.kcv !== k.kcv) throw new KeyhubError('APPROVAL_HASH_MISMATCH', `key ${k.name} version ${k.version} is not what was approved`);
    }
    return { queued: result.queued.length, skipped: result.skipped.length };
  }
}

function pairKey(d: { listenerId: string; target: string }): string {
  return `${d.listenerId}/${d.target}`;
}
