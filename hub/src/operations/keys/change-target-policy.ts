import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { keyVersionMacData } from '../../crypto/row-mac';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { kindsOf, widens } from '../../domain/target-policy';
import { KeyEntity, KeyVersionEntity } from '../../store/entities';
import { setKeyTargetPolicy, setVersionMacs } from '../../store/queries/keys';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { targetKindsOf } from './create-key';

interface Policy {
  targetKinds: string[];
  allowClearImport: boolean;
}

/**
 * `keyhub key target-policy <name> --target-kinds ...`: the kinds of target
 * a key may reach from now on (issue 12). Rules:
 * - a change that widens the policy (a kind added, clear import allowed) is
 *   a dual-control request under `key.target_policy` when that policy is on;
 *   it runs only if the key's policy is still the one approvers read;
 *   a narrowing runs at once;
 * - the policy is bound by every version's row MAC: each stored MAC is
 *   checked in the HSM over the old policy before it is recomputed over the
 *   new one, so a row altered in the database is never re-bound
 *   (ROW_MAC_INVALID, nothing changed);
 * - deliveries already made stay where they are; the new policy governs
 *   every package built from now on. Audited with the old and new policy.
 */
@injectable()
export class ChangeTargetPolicy implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
  ) {}

  async execute(name: string, body: api.TargetPolicyBody, principal: Principal): Promise<api.TargetPolicyResult | { approval: api.ApprovalRequestView }> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const key = await lockKey(m, name);
      const from = policyOf(key);
      const to: Policy = { targetKinds: targetKindsOf(body), allowClearImport: body.allowClearImport ?? key.allowClearImport };
      if (widens(from, to)) {
        const required = await this.dualControl.requiredFor(m, 'key.target_policy');
        if (required > 0) {
          const doc: ActionDocument = { action: 'key.target_policy', key: key.name, keyId: key.id, from, to };
          return { approval: await this.dualControl.open(m, doc, required, principal) };
        }
      }
      return this.apply(m, key, to, principal.name, []);
    });
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'key.target_policy') throw new KeyhubError('INTERNAL', 'not a key target policy change');
    const key = await lockKey(m, doc.key);
    const now = policyOf(key);
    if (key.id !== doc.keyId || !samePolicy(now, doc.from)) {
      throw new KeyhubError('KEY_TARGET_POLICY_CHANGED', `the target policy of key ${doc.key} changed since the approval request was made`);
    }
    const r = await this.apply(m, key, doc.to, run.requester.name, run.approvers);
    return { key: r.key, targetKinds: r.targetKinds.join(','), allowClearImport: r.allowClearImport, versions: r.versions };
  }

  private async apply(m: EntityManager, key: KeyEntity, to: Policy, actor: string, approvers: string[]): Promise<api.TargetPolicyResult> {
    const { keyring } = this.ctx;
    const from = policyOf(key);
    const result = { key: key.name, targetKinds: to.targetKinds as api.TargetPolicyResult['targetKinds'], allowClearImport: to.allowClearImport };
    // Every version's stored MAC is checked first, even for a change that changes nothing: the operator learns of an altered row.
    const versions = (await m.find(KeyVersionEntity, { where: { keyId: key.id } })).filter((v) => v.mac && v.wrapped.length > 0);
    for (const v of versions) {
      if (!(await keyring.verifyRow(keyVersionMacData({ key, version: v }), v.mac!))) {
        throw new KeyhubError('ROW_MAC_INVALID', `key version ${v.id} of ${key.name} does not match its row MAC: its policy is not changed`, { details: { row: 'key_versions', id: v.id } });
      }
    }
    if (samePolicy(from, to)) return { ...result, versions: 0 };
    const macs: Array<[string, Buffer]> = [];
    for (const v of versions) macs.push([v.id, await keyring.macRow(keyVersionMacData({ key: { ...key, ...to }, version: v }))]);
    await setKeyTargetPolicy(m, key.id, to.targetKinds, to.allowClearImport);
    await setVersionMacs(m, macs);
    await appendAudit(m, [
      {
        actor,
        action: 'key.target_policy_changed',
        subject: `key:${key.name}`,
        details: {
          keyId: key.id,
          from: from.targetKinds.join(','),
          to: to.targetKinds.join(','),
          clearImportFrom: from.allowClearImport,
          clearImportTo: to.allowClearImport,
          versions: macs.length,
          ...(approvers.length ? { approvers: approvers.join(',') } : {}),
        },
      },
    ]);
    return { ...result, versions: macs.length };
  }
}

async function lockKey(m: EntityManager, name: string): Promise<KeyEntity> {
  const key = await m.findOne(KeyEntity, { where: { name }, lock: { mode: 'pessimistic_write' } });
  if (!key) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${name}"`);
  return key;
}

function policyOf(key: KeyEntity): Policy {
  return { targetKinds: [...kindsOf(key)].sort(), allowClearImport: key.allowClearImport === true };
}

function samePolicy(a: Policy, b: Policy): boolean {
  return a.allowClearImport === b.allowClearImport && [...a.targetKinds].sort().join(',') === [...b.targetKinds].sort().join(',');
}
