import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { ListenerEntity } from '../../store/entities';
import { endKeks, revokeTargetKeks, insertLifecycleEvent, lastDecommission, pendingCommands, siteKeyHoldings, siteKeyRecords, supersedeOpenDistributions } from '../../store/queries/site-lifecycle';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { queueKeyCommands } from '../commands/queue-key-commands';
import { FinishDecommission } from './finish-decommission';
import { siteKeysSummary, siteKeyView } from './site-keys';

export interface DecommissionOptions {
  force?: boolean;
  timeoutSeconds?: number;
  reason?: string;
}

/** How long a reachable site has, by default, to confirm its destroys before its identity is revoked anyway. */
export const DEFAULT_DECOMMISSION_TIMEOUT_SECONDS = 3600;

/**
 * `keyhub listener decommission <id>`: a site leaves service for good.
 * Sequence (destroys must be deliverable before the identity goes):
 * 1. In one transaction: what the site holds (or was sent) is recorded
 *    (site_key_records), with whether another site in service holds it;
 *    its root KEKs are revoked and their blobs wiped; every unsettled
 *    distribution to it is superseded and its unpublished packages deleted
 *    from the outbox (the stream clean-up removes published ones, and the
 *    site never again gets a KEK they could be unwrapped with elsewhere:
 *    each package is wrapped for this site only); a destroy command is
 *    queued for every (version, target) it holds, on the urgent lane
 *    (queueKeyCommands); the site becomes `decommissioning`.
 * 2. FinishDecommission revokes its NATS identity once every destroy is
 *    answered, or at the deadline (timeoutSeconds), or at once with --force
 *    (then no destroy is sent: the operator says the site is gone).
 * A site that is not active (never activated, rekey_required, revoked) is
 * not reachable: nothing is sent and step 2 runs at once. Repeating the
 * call reports the state; with --force it finishes a decommission under way.
 * The result lists the versions held only there, for re-keying. Under the
 * `listener.decommission` policy the call becomes a request naming the
 * site (and its enrollment fingerprint), run once at quorum; repeating the
 * call on a site already being decommissioned needs no approval.
 */
@injectable()
export class DecommissionListener implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly finish: FinishDecommission,
    private readonly dualControl: DualControl,
  ) {}

  async execute(listenerId: string, o: DecommissionOptions, principal: Principal): Promise<api.DecommissionResult | { approval: api.ApprovalRequestView }> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const listener = await this.lock(m, listenerId);
      const required = await this.dualControl.requiredFor(m, 'listener.decommission');
      if (required > 0 && listener.state !== 'decommissioning' && listener.state !== 'decommissioned') {
        const doc: ActionDocument = {
          action: 'listener.decommission',
          listenerId,
          fingerprint: listener.fingerprint,
          force: !!o.force,
          timeoutSeconds: o.timeoutSeconds ?? DEFAULT_DECOMMISSION_TIMEOUT_SECONDS,
          reason: o.reason ?? null,
        };
        return { approval: await this.dualControl.open(m, doc, required, principal) };
      }
      return this.executeIn(m, listener, o, principal.name, []);
    });
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'listener.decommission') throw new KeyhubError('INTERNAL', 'not a decommission request');
    const listener = await this.lock(m, doc.listenerId);
    if (listener.fingerprint !== doc.fingerprint) throw new KeyhubError('APPROVAL_HASH_MISMATCH', `listener ${doc.listenerId} enrolled again since the request was made`);
    const r = await this.executeIn(m, listener, { force: doc.force, timeoutSeconds: doc.timeoutSeconds, reason: doc.reason ?? undefined }, run.requester.name, run.approvers);
    return { listenerId: r.listenerId, state: r.state, destroyCommands: r.destroyCommands, heldOnlyHere: r.heldOnlyHere.length, revokedKeks: r.revokedKeks };
  }

  private async lock(m: EntityManager, listenerId: string): Promise<ListenerEntity> {
    const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
    if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
    return listener;
  }

  /** The decommission itself, in the caller's transaction (audit chain locked). */
  async executeIn(m: EntityManager, listener: ListenerEntity, o: DecommissionOptions, actor: string, approvers: string[]): Promise<api.DecommissionResult> {
    if (listener.state === 'decommissioning' || listener.state === 'decommissioned') return this.again(m, listener, o, actor);
    const listenerId = listener.id;
    const held = await siteKeyHoldings(m, listenerId);
    const keks = await endKeks(m, listenerId, 'revoked');
    const targetKeks = await revokeTargetKeks(m, listenerId);
    const cancelled = await supersedeOpenDistributions(m, listenerId, 'LISTENER_DECOMMISSIONED', 'the site was decommissioned');
    const reachable = listener.state === 'active' && !o.force;
    const commandIds = reachable && held.length ? await this.queueDestroys(m, listenerId, held, o.reason, actor) : [];
    const eventId = randomUUID();
    const deadline = new Date(Date.now() + (o.timeoutSeconds ?? DEFAULT_DECOMMISSION_TIMEOUT_SECONDS) * 1000);
    await insertLifecycleEvent(
      m,
      { id: eventId, listenerId, kind: 'decommission', reason: o.reason ?? null, createdBy: actor, deadline, commandIds, finished: false, streamCleanup: 'packages' },
      held,
    );
    await m.update(ListenerEntity, { id: listenerId }, { state: 'decommissioning' });
    const details = {
      eventId,
      reason: o.reason ?? '',
      ...(approvers.length ? { approvers: approvers.join(',') } : {}),
      previousState: listener.state,
      forced: !!o.force,
      destroyCommands: commandIds.length,
      deadline: deadline.toISOString(),
      cancelledDistributions: cancelled,
      heldOnlyHere: held.filter((h) => !h.held_elsewhere).length,
      ...siteKeysSummary(held),
    };
    await appendAudit(m, [
      ...keks.map((k) => ({ actor, action: 'kek.revoked', subject: `listener:${listenerId}`, details: { kekId: k.id, version: k.version, reason: 'decommission' } })),
      ...targetKeks.map((k) => ({
        actor,
        action: 'target_kek.revoked',
        subject: `listener:${listenerId}`,
        details: { kekId: k.id, target: k.target, version: k.version, previousState: k.state, reason: 'decommission' },
      })),
      { actor, action: 'listener.decommission_started', subject: `listener:${listenerId}`, details },
    ]);
    // Nothing to wait for (forced, unreachable, or nothing held): the identity goes now.
    const finished = commandIds.length === 0 ? await this.finish.executeIn(m, listenerId, eventId, actor, !!o.force) : undefined;
    const views = held.map(siteKeyView);
    return {
      listenerId,
      state: finished ? 'decommissioned' : 'decommissioning',
      deadline: finished ? null : deadline.toISOString(),
      held: views,
      heldOnlyHere: views.filter((h) => !h.heldElsewhere),
      destroyCommands: commandIds.length,
      destroysOutstanding: finished ? 0 : commandIds.length,
      cancelledDistributions: cancelled,
      revokedKeks: keks.length,
      revokedNatsKeys: finished?.revokedNatsKeys ?? 0,
    };
  }

  private async queueDestroys(m: EntityManager, listenerId: string, held: Array<{ key_version_id: string; target: string }>, reason: string | undefined, actor: string): Promise<string[]> {
    const requests = held.map((h) => ({
      keyVersionId: h.key_version_id,
      action: 'destroy' as const,
      destinations: [{ listenerId, target: h.target }],
      reason: `decommission of ${listenerId}${reason ? `: ${reason}` : ''}`,
      reasonCode: 'decommission' as const,
    }));
    return (await queueKeyCommands(m, requests, actor)).commandIds;
  }

  /** A decommission under way or done: its record; --force finishes one under way now. */
  private async again(m: EntityManager, listener: ListenerEntity, o: DecommissionOptions, actor: string): Promise<api.DecommissionResult> {
    const event = await lastDecommission(m, listener.id);
    if (!event) throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listener.id} is ${listener.state} without a decommission record`);
    let state = listener.state as 'decommissioning' | 'decommissioned';
    let revokedNatsKeys = 0;
    if (state === 'decommissioning' && o.force) {
      revokedNatsKeys = (await this.finish.executeIn(m, listener.id, event.id, actor, true)).revokedNatsKeys;
      state = 'decommissioned';
    }
    const held = (await siteKeyRecords(m, event.id)).map(siteKeyView);
    return {
      listenerId: listener.id,
      state,
      deadline: state === 'decommissioning' && event.deadline ? event.deadline.toISOString() : null,
      held,
      heldOnlyHere: held.filter((h) => !h.heldElsewhere),
      destroyCommands: event.command_ids.length,
      destroysOutstanding: await pendingCommands(m, event.command_ids),
      cancelledDistributions: 0,
      revokedKeks: 0,
      revokedNatsKeys,
    };
  }
}
