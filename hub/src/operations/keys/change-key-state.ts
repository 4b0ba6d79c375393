import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import { targetStateOf, type KeyState, type KeyStateAction } from '../../domain/key-lifecycle';
import type { Principal } from '../../domain/principal';
import { keyByName, lockVersion, type LifecycleKeyRow, type LifecycleVersionRow } from '../../store/queries/key-lifecycle';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { writeTransitions } from './version-transition';

export interface ChangeKeyStateInput {
  name: string;
  action: KeyStateAction;
  /** Omitted: the key's current version. */
  version?: number;
  reason?: string;
}

export interface KeyStateChanged {
  key: string;
  version: number;
  from: KeyState;
  to: KeyState;
  /** (listener, target) pairs the site command went to. */
  sites: number;
}

/** Destroy and compromise can be put under dual control, each by its own policy. */
function policyOf(action: KeyStateAction): 'key.destroy' | 'key.compromise' | undefined {
  if (action === 'destroy') return 'key.destroy';
  if (action === 'compromise') return 'key.compromise';
  return undefined;
}

/**
 * An operator changes the state of a key version (NIST SP 800-57, domain/
 * key-lifecycle.ts): activate, suspend, resume, deactivate, compromise,
 * destroy. Rule: only the transitions the standard allows
 * (KEY_STATE_TRANSITION_INVALID otherwise); in one transaction the state
 * changes, the audit event is written and a signed command is queued to
 * every site that holds the version. A destroyed version's wrapped material
 * is erased from the hub database in that same statement. Under the
 * `key.destroy` / `key.compromise` policies the call becomes a request
 * naming the exact version and its KCV, run once at quorum.
 */
@injectable()
export class ChangeKeyState implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
  ) {}

  async execute(input: ChangeKeyStateInput, principal: Principal): Promise<KeyStateChanged | { approval: api.ApprovalRequestView }> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const policy = policyOf(input.action);
      const required = policy ? await this.dualControl.requiredFor(m, policy) : 0;
      if (policy && required > 0) {
        const { key, version } = await locate(m, input);
        // Refused now rather than after the approvers have spent their time on it.
        targetStateOf(input.action, version.state);
        const doc: ActionDocument = { action: policy, key: key.name, keyId: key.id, version: version.version, kcv: version.kcv, reason: input.reason ?? null };
        return { approval: await this.dualControl.open(m, doc, required, principal) };
      }
      return this.apply(m, input, principal.name);
    });
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'key.destroy' && doc.action !== 'key.compromise') throw new KeyhubError('INTERNAL', 'not a key state request');
    const { key, version } = await locate(m, { name: doc.key, version: doc.version });
    // The approved version must be the one changed: a key renamed or re-created meanwhile would show here.
    if (key.id !== doc.keyId || version.kcv !== doc.kcv) throw new KeyhubError('APPROVAL_HASH_MISMATCH', `${doc.key} version ${doc.version} is not what was approved`);
    const action = doc.action === 'key.destroy' ? 'destroy' : 'compromise';
    const r = await this.applyTo(m, key, version, action, doc.reason ?? undefined, run.requester.name, run.approvers);
    return { key: r.key, version: r.version, from: r.from, to: r.to, sites: r.sites };
  }

  /** The change itself, in the caller's transaction (audit chain locked). */
  private async apply(m: EntityManager, input: ChangeKeyStateInput, actor: string): Promise<KeyStateChanged> {
    const { key, version } = await locate(m, input);
    return this.applyTo(m, key, version, input.action, input.reason, actor);
  }

  private async applyTo(
    m: EntityManager,
    key: LifecycleKeyRow,
    version: LifecycleVersionRow,
    action: KeyStateAction,
    reason: string | undefined,
    actor: string,
    approvers?: string[],
  ): Promise<KeyStateChanged> {
    const from = version.state as KeyState;
    const to = targetStateOf(action, from);
    const t = { versionId: version.id, keyId: key.id, keyName: key.name, version: version.version, kcv: version.kcv, from, to, ...(reason ? { reason } : {}) };
    const { sites } = await writeTransitions(m, [t], actor, approvers ? { approvers } : {});
    return { key: key.name, version: version.version, from, to, sites };
  }
}

/** The key and its version (the current one unless named), the version row locked for the rest of the transaction. */
async function locate(m: EntityManager, input: { name: string; version?: number }): Promise<{ key: LifecycleKeyRow; version: LifecycleVersionRow }> {
  const key = await keyByName(m, input.name);
  if (!key) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${input.name}"`);
  const number = input.version ?? key.current_version;
  const version = await lockVersion(m, key.id, number);
  if (!version) throw new KeyhubError('KEY_NOT_FOUND', `key "${key.name}" has no version ${number}`);
  return { key, version };
}
