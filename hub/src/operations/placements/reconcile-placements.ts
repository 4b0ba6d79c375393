import { createHash } from 'node:crypto';
import { injectable } from 'tsyringe';
import { canonicalBytes, type api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument } from '../../domain/approval-actions';
import { diffPlacement, siteKey, wantedVersion, type PlacementRule, type PolicyDiff, type Site } from '../../domain/policy-diff';
import type { Principal } from '../../domain/principal';
import {
  deletePlacementSites,
  desiredPlacementSites,
  distributionSites,
  insertPlacementSites,
  keyVersionIds,
  listPlacementRows,
  placedSites,
  setPendingWidening,
  tryReconcileLock,
  type PlacementRow,
} from '../../store/queries/placements';
import { DualControl } from '../approvals/dual-control';
import { queueKeyCommands } from '../commands/queue-key-commands';
import { Distribute } from '../distributions/distribute';

type Placed = Site & { version: number; keyVersionId: string };

/**
 * Keeps every distribution policy true (domain/policy-diff.ts): queues the
 * wanted version where a matching site lacks it (a new enrollment, a label
 * set, a rotation), records what each policy placed, asks for approval where
 * a sensitive key would reach further than approved, and sends destroy
 * commands where a site no longer matches. One hub replica reconciles at a
 * time (a transaction-scoped advisory lock; the others skip their run), and
 * distributions' UNIQUE(key_version_id, listener_id, target) makes a double
 * queue impossible even so. Each placement is handled on its own: one that
 * fails (a version not active, a command that cannot be signed) is logged
 * and retried next run without holding back the others.
 */
@injectable()
export class ReconcilePlacements {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly distribute: Distribute,
  ) {}

  async execute(): Promise<api.ReconcileResultView> {
    return this.ctx.ds.transaction(async (lock) => {
      const result = { placements: 0, queued: 0, removed: 0, approvalsRequested: 0, skipped: false };
      if (!(await tryReconcileLock(lock))) return { ...result, skipped: true };
      const m = this.ctx.ds.manager;
      const placements = await listPlacementRows(m);
      result.placements = placements.length;
      if (placements.length === 0) return result;
      const dualControlOn = (await this.dualControl.requiredFor(m, 'placement.sensitive')) > 0;
      const rules = new Map(placements.map((p) => [p.id, ruleOf(p, dualControlOn)]));
      const desired = groupSites(await desiredPlacementSites(m));
      const placed = new Map<string, Placed[]>();
      for (const s of await placedSites(m)) {
        // Only an active site can stop matching: one being re-keyed or decommissioned is not "removed" by its state
        // (its own lifecycle decides what happens to its keys), and gets nothing new while not active.
        if (s.listener_state !== 'active') continue;
        const list = placed.get(s.placement_id) ?? [];
        list.push({ listenerId: s.listener_id, target: s.target, version: s.version, keyVersionId: s.key_version_id });
        placed.set(s.placement_id, list);
      }
      const versions = await keyVersionIds(
        m,
        placements.map((p) => ({ keyId: p.key_id, version: wantedVersion(rules.get(p.id)!, p.current_version) })),
      );
      const versionOf = new Map(versions.map((v) => [`${v.key_id}/${v.version}`, v]));
      const holding = new Set(
        (
          await distributionSites(
            m,
            versions.map((v) => v.id),
          )
        ).map((d) => `${d.key_version_id}/${d.listener_id}/${d.target}`),
      );
      for (const p of placements) {
        const rule = rules.get(p.id)!;
        const version = versionOf.get(`${p.key_id}/${wantedVersion(rule, p.current_version)}`);
        const elsewhere = new Set(placements.filter((o) => o.key_id === p.key_id && o.id !== p.id).flatMap((o) => (desired.get(o.id) ?? []).map(siteKey)));
        const diff = diffPlacement({
          rule,
          currentVersion: p.current_version,
          desired: desired.get(p.id) ?? [],
          holding: new Set((desired.get(p.id) ?? []).filter((s) => version && holding.has(`${version.id}/${siteKey(s)}`)).map(siteKey)),
          placed: placed.get(p.id) ?? [],
          wantedElsewhere: elsewhere,
        });
        try {
          const r = await this.apply(p, diff, version, placed.get(p.id) ?? []);
          result.queued += r.queued;
          result.removed += r.removed;
          result.approvalsRequested += r.requested ? 1 : 0;
        } catch (err) {
          const e = KeyhubError.from(err);
          this.ctx.logger.warn({ placement: p.name, code: e.code, detail: e.message }, 'placement could not be reconciled; next run retries');
        }
      }
      return result;
    });
  }

  private async apply(
    p: PlacementRow,
    diff: PolicyDiff,
    version: { id: string; kcv: string; state: string } | undefined,
    placed: Placed[],
  ): Promise<{ queued: number; removed: number; requested: boolean }> {
    const out = { queued: 0, removed: 0, requested: false };
    const actor = `placement:${p.name}`;
    if (version && version.state === 'active' && (diff.push.length || diff.adopt.length)) {
      if (diff.push.length) {
        const r = await this.distribute.execute({ keys: [{ name: p.key_name, version: diff.version }], to: diff.push, actor });
        out.queued = r.queued.length;
      }
      await insertPlacementSites(this.ctx.ds.manager, p.id, version.id, [...diff.push, ...diff.adopt]);
    }
    if (diff.widen && version && p.pending_state !== 'pending') out.requested = await this.requestWidening(p, diff.widen, version.kcv);
    if (diff.remove.length) out.removed = await this.remove(p, diff.remove, placed, actor);
    return out;
  }

  /** A widening of a sensitive key's reach becomes one approval request, not asked again while pending or once asked for the same sites. */
  private async requestWidening(p: PlacementRow, widen: { version: number; sites: Site[] }, kcv: string): Promise<boolean> {
    const sites = widen.sites.map(siteKey).sort();
    const sha = createHash('sha256')
      .update(canonicalBytes({ placement: p.id, version: widen.version, sites }))
      .digest('hex');
    if (sha === p.last_widening_sha) return false;
    const doc: ActionDocument = {
      action: 'placement.sensitive',
      change: 'widen',
      placement: p.name,
      placementId: p.id,
      key: p.key_name,
      version: widen.version,
      kcv,
      futureVersions: p.future_versions,
      futureSites: p.future_sites,
      sites,
    };
    // The policy's author asks: they cannot approve it themselves, like any requester.
    const requester: Principal = { operatorId: p.created_by_operator, name: p.created_by, roles: [], method: 'token', tokenId: null, tokenScope: null, expiresAt: null };
    await this.ctx.ds.transaction(async (tx) => {
      await lockAuditChain(tx);
      const required = await this.dualControl.requiredFor(tx, 'placement.sensitive');
      const view = await this.dualControl.open(tx, doc, Math.max(required, 1), requester);
      await setPendingWidening(tx, p.id, view.id, sha);
    });
    return true;
  }

  /** Sites that left the policy: destroy commands for what it placed there, in one transaction with the bookkeeping. */
  private async remove(p: PlacementRow, remove: Array<Site & { version: number }>, placed: Placed[], actor: string): Promise<number> {
    const rows = placed.filter((x) => remove.some((r) => siteKey(r) === siteKey(x) && r.version === x.version));
    const byVersion = new Map<string, Site[]>();
    for (const r of rows) byVersion.set(r.keyVersionId, [...(byVersion.get(r.keyVersionId) ?? []), { listenerId: r.listenerId, target: r.target }]);
    await this.ctx.ds.transaction(async (tx) => {
      await lockAuditChain(tx);
      await queueKeyCommands(
        tx,
        [...byVersion].map(([keyVersionId, destinations]) => ({ keyVersionId, action: 'destroy' as const, destinations, reason: `site left placement ${p.name}`, reasonCode: 'policy' as const })),
        actor,
      );
      await deletePlacementSites(tx, p.id, rows);
      await appendAudit(tx, [{ actor, action: 'placement.sites_removed', subject: `placement:${p.name}`, details: { sites: rows.map((r) => `${siteKey(r)}@v${r.version}`).join(',') } }]);
    });
    return rows.length;
  }
}

function ruleOf(p: PlacementRow, dualControlOn: boolean): PlacementRule {
  const dualControl = dualControlOn && p.key_sensitive;
  return {
    futureVersions: p.future_versions,
    futureSites: p.future_sites,
    dualControl,
    version: p.version,
    approvedSites: dualControl ? new Set(p.approved_sites ?? []) : null,
  };
}

function groupSites(rows: Array<{ placement_id: string; listener_id: string; target: string }>): Map<string, Site[]> {
  const out = new Map<string, Site[]>();
  for (const r of rows) out.set(r.placement_id, [...(out.get(r.placement_id) ?? []), { listenerId: r.listener_id, target: r.target }]);
  return out;
}
