import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { DriftFinding } from '../../domain/drift';
import { lockConfirmedForRepush, requeueRepushed } from '../../store/queries/drift';
import { findDistributionsByIds } from '../../store/queries/distributions';
import { loadVersionsAndKeys } from '../../store/queries/keys';
import { destroyExtrasSites, keyVersionIds } from '../../store/queries/placements';
import { commandHolders, versionStates } from '../../store/queries/key-commands';
import { queueKeyCommands, type KeyCommandAction, type KeyCommandRequest } from '../commands/queue-key-commands';
import { issuePackages, type PackageRequest } from '../distributions/issue-packages';

export interface HealResult {
  repushed: number;
  commands: number;
  /** Extra objects left alone (no policy of theirs says destroy, or no Keyhub identity). */
  reportedOnly: number;
}

/** The command that puts a version back into the state the hub records for it (state_mismatch). */
export function commandForState(versionState: string): KeyCommandAction | undefined {
  switch (versionState) {
    case 'active':
      return 'resume';
    case 'suspended':
      return 'suspend';
    case 'deactivated':
      return 'deactivate';
    case 'compromised':
      return 'compromise';
    case 'destroyed':
      return 'destroy';
    default:
      return undefined;
  }
}

const ACTOR = 'hub:drift';

/** A command that restores a recorded state names that state: it is sent only if the version is still in it. */
type HealRequest = KeyCommandRequest & { expectState?: string };

/**
 * Heals new drift findings. Rules: missing -> the confirmed distribution is
 * queued again with a fresh package (the site confirms it again with its
 * KCV); wrong state -> the command for the recorded state
 * (queueKeyCommands); extra -> reported, and destroyed only when a
 * placement of that key at that site says destroyExtras and the site holds
 * no live distribution of that version (an object without a Keyhub identity
 * is never touched: the hub cannot name it in a signed command). KCV mismatches are reported only: which side is wrong is for a
 * person to find out. Each kind heals in its own transaction, so a failure
 * in one (e.g. a command that cannot be signed) does not hold back the rest.
 */
@injectable()
export class HealDrift {
  constructor(private readonly ctx: HubContext) {}

  async execute(fresh: DriftFinding[]): Promise<HealResult> {
    const result: HealResult = { repushed: 0, commands: 0, reportedOnly: 0 };
    const missing = fresh.filter((f) => f.kind === 'missing' && f.distributionId !== null).map((f) => f.distributionId!);
    if (missing.length) result.repushed = await this.repush(missing);
    const commands = await this.plannedCommands(fresh, result);
    if (commands.length) {
      try {
        result.commands = await this.ctx.ds.transaction(async (m) => {
          // The chain lock first, as every state change takes it: the states read next stay current until this commits.
          // A finding is as old as its scan: an operator's suspend or resume since then must not be undone by a heal
          // issued (and so dated) after it, which the site would carry out as the newer command.
          await lockAuditChain(m);
          const states = await versionStates(m, [...new Set(commands.map((c) => c.keyVersionId))]);
          const current = commands.filter((c) => c.expectState === undefined || states.get(c.keyVersionId) === c.expectState);
          return (await queueKeyCommands(m, current, ACTOR)).sites;
        });
      } catch (err) {
        const e = KeyhubError.from(err);
        this.ctx.logger.warn({ code: e.code, detail: e.message, commands: commands.length }, 'drift: commands to heal state could not be queued; the findings stay open');
      }
    }
    return result;
  }

  /** Confirmed distributions whose key the site lost: queued again with fresh packages, one audit event each. */
  private async repush(distributionIds: string[]): Promise<number> {
    const { ds, keyring, config } = this.ctx;
    return ds.transaction(async (m) => {
      await lockAuditChain(m);
      const ids = await lockConfirmedForRepush(m, distributionIds);
      if (ids.length === 0) return 0;
      const rows = await findDistributionsByIds(m, ids);
      const { versions, keys } = await loadVersionsAndKeys(m, [...new Set(rows.map((r) => r.keyVersionId))]);
      // Only versions that may still travel: a version no longer active is not pushed back.
      const requests: PackageRequest[] = rows
        .filter((d) => versions.get(d.keyVersionId)?.state === 'active')
        .map((d) => {
          const version = versions.get(d.keyVersionId)!;
          return { distribution: d, version, key: keys.get(version.keyId)! };
        });
      const issued = await issuePackages(m, keyring, requests, config.delivery.packageTtlSeconds);
      await requeueRepushed(m, issued);
      await appendAudit(
        m,
        issued.map((i) => ({ actor: ACTOR, action: 'distribution.repushed', subject: `distribution:${i.distributionId}`, details: { reason: 'drift.missing', packageId: i.packageId } })),
      );
      return issued.length;
    });
  }

  private async plannedCommands(fresh: DriftFinding[], result: HealResult): Promise<HealRequest[]> {
    const m = this.ctx.ds.manager;
    const requests: HealRequest[] = [];
    for (const f of fresh.filter((x) => x.kind === 'state_mismatch' && x.keyVersionId !== null && x.expectedState !== null)) {
      const action = commandForState(f.expectedState!);
      if (action)
        requests.push({
          keyVersionId: f.keyVersionId!,
          action,
          destinations: [{ listenerId: f.listenerId, target: f.target }],
          reason: `drift: ${f.reportedState} where ${f.expectedState} is recorded`,
          reasonCode: 'policy',
          ...(action === 'destroy' ? {} : { expectState: f.expectedState! }),
        });
    }
    const extras = fresh.filter((x) => x.kind === 'extra');
    if (extras.length === 0) return requests;
    const destroyable = new Set((await destroyExtrasSites(m)).map((s) => `${s.key_id}/${s.listener_id}/${s.target}`));
    const known = extras.filter((x) => x.keyId !== null && x.version !== null && destroyable.has(`${x.keyId}/${x.listenerId}/${x.target}`));
    result.reportedOnly = extras.length - known.length;
    const versions = await keyVersionIds(
      m,
      known.map((x) => ({ keyId: x.keyId!, version: x.version! })),
    );
    const idOf = new Map(versions.map((v) => [`${v.key_id}/${v.version}`, v.id]));
    // A destroy names only (key, version): the site tombstones the version site-wide and the target destroys every
    // object with that identity (a planted copy, or an object counted under another target of the same token, is
    // "extra" too). Never for a version the site holds by a live distribution: that would take the real key with it.
    const held = new Set((await commandHolders(m, [...new Set(idOf.values())])).map((h) => `${h.key_version_id}/${h.listener_id}`));
    for (const x of known) {
      const id = idOf.get(`${x.keyId}/${x.version}`);
      if (id && !held.has(`${id}/${x.listenerId}`))
        requests.push({
          keyVersionId: id,
          action: 'destroy',
          destinations: [{ listenerId: x.listenerId, target: x.target }],
          reason: 'drift: extra version, placement says destroyExtras',
          reasonCode: 'policy',
        });
      else result.reportedOnly++;
    }
    return requests;
  }
}
