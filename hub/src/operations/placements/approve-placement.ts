import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import type { StoredRequest } from '../../domain/approval-actions';
import { findKeysByName, findKeyVersions } from '../../store/queries/keys';
import { approveWidening, insertPlacement, placementById, type NewPlacement } from '../../store/queries/placements';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { placementDetails } from './create-placement';
import { ReconcilePlacements } from './reconcile-placements';

/**
 * Carries out an approved `placement.sensitive` request. In the approval's
 * transaction: a 'create' makes the policy with exactly the version and
 * sites approved (and the approved futureVersions/futureSites); a 'widen'
 * adds the approved sites (and moves the policy to the approved version).
 * The version's KCV must still be the one approved. After the commit the
 * placements are reconciled, which pushes what is now approved.
 */
@injectable()
export class ApprovePlacement implements ApprovedActionRunner {
  constructor(private readonly reconcile: ReconcilePlacements) {}

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'placement.sensitive') throw new KeyhubError('INTERNAL', 'not a placement request');
    const [key] = await findKeysByName(m, [doc.key]);
    const [version] = key ? await findKeyVersions(m, [key.id], [doc.version]) : [];
    if (!key || !version) throw new KeyhubError('KEY_NOT_FOUND', `key "${doc.key}" v${doc.version} no longer exists`);
    if (version.kcv !== doc.kcv) throw new KeyhubError('APPROVAL_HASH_MISMATCH', `key ${doc.key} version ${doc.version} is not what was approved`);
    if (doc.change === 'create') {
      const row: NewPlacement = {
        id: randomUUID(),
        name: doc.placement,
        keyId: key.id,
        listenerIds: doc.listeners,
        selector: doc.selector,
        targets: doc.targets,
        futureVersions: doc.futureVersions,
        futureSites: doc.futureSites,
        destroyExtras: doc.destroyExtras,
        version: doc.version,
        approvedSites: doc.sites,
        createdBy: run.requester.name,
        createdByOperator: run.requester.id,
      };
      if (!(await insertPlacement(m, row))) throw new KeyhubError('PLACEMENT_EXISTS', `a placement named "${row.name}" exists`);
      await appendAudit(m, [
        {
          actor: run.requester.name,
          action: 'placement.created',
          subject: `placement:${row.name}`,
          details: { ...placementDetails(row, key.name), approval: doc.requestId, approvers: run.approvers.join(',') },
        },
      ]);
      return { placement: row.name, sites: doc.sites.length };
    }
    const p = await placementById(m, doc.placementId, true);
    if (!p) throw new KeyhubError('PLACEMENT_NOT_FOUND', `placement ${doc.placement} no longer exists`);
    await approveWidening(m, p.id, doc.version, doc.sites, doc.version !== p.version);
    await appendAudit(m, [
      {
        actor: run.requester.name,
        action: 'placement.widened',
        subject: `placement:${p.name}`,
        details: { version: doc.version, sites: doc.sites.join(','), approval: doc.requestId, approvers: run.approvers.join(',') },
      },
    ]);
    return { placement: p.name, sites: doc.sites.length };
  }

  async runAfterCommit(): Promise<ActionResult> {
    const r = await this.reconcile.execute();
    return { queued: r.queued, skipped: r.skipped };
  }
}
