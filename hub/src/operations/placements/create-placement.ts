import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument } from '../../domain/approval-actions';
import { matchesSelector } from '../../domain/label-selector';
import { siteKey } from '../../domain/policy-diff';
import { assertKindAllowed, type TargetPolicy } from '../../domain/target-policy';
import type { Principal } from '../../domain/principal';
import { findKeysByName, findKeyVersions } from '../../store/queries/keys';
import { activeListenerTargets } from '../../store/queries/listeners';
import { insertPlacement, listenerLabelsOf, placementByName, type NewPlacement } from '../../store/queries/placements';
import { DualControl } from '../approvals/dual-control';
import { placementView } from './placement-view';
import { ReconcilePlacements } from './reconcile-placements';

/**
 * Creates a distribution policy ("placement"). Rules: the key and its
 * current version must exist and be active (the policy is made for that
 * version); a policy for a sensitive key, when the `placement.sensitive`
 * approval policy is on, is not created but requested: the request names
 * the version (with its KCV), every site it reaches now, and whether later
 * versions and later matching sites are covered. Otherwise it is created at
 * once and reconciled right after its commit.
 */
@injectable()
export class CreatePlacement {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly reconcile: ReconcilePlacements,
  ) {}

  async execute(body: api.CreatePlacementBody, principal: Principal): Promise<{ placement: api.PlacementView } | { approval: api.ApprovalRequestView }> {
    const m = this.ctx.ds.manager;
    const [key] = await findKeysByName(m, [body.key]);
    if (!key) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${body.key}"`);
    const [version] = await findKeyVersions(m, [key.id], [key.currentVersion]);
    if (!version || version.state !== 'active') throw new KeyhubError('KEY_VERSION_NOT_ACTIVE', `the current version of "${key.name}" is not active`);
    const row: NewPlacement = {
      id: randomUUID(),
      name: body.name,
      keyId: key.id,
      listenerIds: [...new Set(body.listeners ?? [])],
      selector: body.selector && Object.keys(body.selector).length ? body.selector : null,
      targets: [...new Set(body.targets ?? [])],
      futureVersions: body.futureVersions ?? true,
      futureSites: body.futureSites ?? true,
      destroyExtras: body.destroyExtras ?? false,
      version: version.version,
      approvedSites: null,
      createdBy: principal.name,
      createdByOperator: principal.operatorId,
    };
    await this.assertKindsAllowed(row, key);
    if (key.sensitive && (await this.dualControl.requiredFor(m, 'placement.sensitive')) > 0) {
      const sites = await this.sitesNow(row);
      const doc: ActionDocument = {
        action: 'placement.sensitive',
        change: 'create',
        placement: row.name,
        key: key.name,
        version: version.version,
        kcv: version.kcv,
        listeners: row.listenerIds,
        selector: row.selector,
        targets: row.targets,
        futureVersions: row.futureVersions,
        futureSites: row.futureSites,
        destroyExtras: row.destroyExtras,
        sites,
      };
      return this.ctx.ds.transaction(async (tx) => {
        await lockAuditChain(tx);
        if (await placementByName(tx, row.name)) throw new KeyhubError('PLACEMENT_EXISTS', `a placement named "${row.name}" exists`);
        const required = await this.dualControl.requiredFor(tx, 'placement.sensitive');
        return { approval: await this.dualControl.open(tx, doc, Math.max(required, 1), principal) };
      });
    }
    await this.ctx.ds.transaction(async (tx) => {
      await lockAuditChain(tx);
      if (!(await insertPlacement(tx, row))) throw new KeyhubError('PLACEMENT_EXISTS', `a placement named "${row.name}" exists`);
      await appendAudit(tx, [{ actor: principal.name, action: 'placement.created', subject: `placement:${row.name}`, details: placementDetails(row, key.name) }]);
    });
    await this.reconcileSoon();
    return { placement: placementView((await placementByName(m, row.name))!) };
  }

  /** The sites ("listener/target") the policy reaches now: what an approver sees and approves. */
  private async sitesNow(p: NewPlacement): Promise<string[]> {
    const m = this.ctx.ds.manager;
    const active = await activeListenerTargets(m);
    const labels = await listenerLabelsOf(
      m,
      active.map((l) => l.id),
    );
    const sites: string[] = [];
    for (const l of active) {
      const byId = p.listenerIds.includes(l.id);
      const bySelector = p.selector !== null && matchesSelector(labels.get(l.id) ?? {}, p.selector);
      if (!byId && !bySelector) continue;
      for (const t of l.targets) if (p.targets.length === 0 || p.targets.includes(t.name)) sites.push(siteKey({ listenerId: l.id, target: t.name }));
    }
    return sites.sort();
  }

  /**
   * A placement that names targets must not name one, at a site it reaches
   * now, whose kind the key's policy does not allow (TARGET_KIND_NOT_ALLOWED,
   * issue 12); one that names none reaches only the allowed ones.
   */
  private async assertKindsAllowed(p: NewPlacement, key: TargetPolicy & { name: string }): Promise<void> {
    if (p.targets.length === 0) return;
    const m = this.ctx.ds.manager;
    const active = await activeListenerTargets(m);
    const labels = await listenerLabelsOf(
      m,
      active.map((l) => l.id),
    );
    for (const l of active) {
      if (!p.listenerIds.includes(l.id) && !(p.selector !== null && matchesSelector(labels.get(l.id) ?? {}, p.selector))) continue;
      for (const t of l.targets) if (p.targets.includes(t.name)) assertKindAllowed(key, { listenerId: l.id, target: t.name, kind: t.kind });
    }
  }

  /** The new policy takes effect now rather than at the next tick; another replica's run covers it if this one is skipped. */
  private async reconcileSoon(): Promise<void> {
    try {
      await this.reconcile.execute();
    } catch (err) {
      const e = KeyhubError.from(err);
      this.ctx.logger.warn({ code: e.code, detail: e.message }, 'placement created; its first reconcile failed and the job will retry');
    }
  }
}

export function placementDetails(p: NewPlacement, keyName: string): Record<string, string | number | boolean> {
  return {
    key: keyName,
    version: p.version,
    listeners: p.listenerIds.join(','),
    selector: p.selector
      ? Object.entries(p.selector)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')
      : '',
    targets: p.targets.join(','),
    futureVersions: p.futureVersions,
    futureSites: p.futureSites,
    destroyExtras: p.destroyExtras,
  };
}
