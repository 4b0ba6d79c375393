import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { fingerprintsEqual, MAX_SHAMIR_PARTS, MAX_XOR_PARTS, type api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { ActionDocument, StoredRequest } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { operatorByName } from '../../store/queries/operators';
import type { ActionResult, ApprovedActionRunner, ApprovedRun } from '../approvals/approved-action';
import { DualControl } from '../approvals/dual-control';
import { ApproveListener } from './approve-listener';

export interface CeremonyBody {
  fingerprint: string;
  parts: number;
  /** Shamir shares, any `threshold` of `parts`; absent: XOR components, all needed. */
  threshold?: number;
  custodians: string[];
}

/**
 * Approving an enrollment with a root KEK by key components (split
 * knowledge): the key officer names the fingerprint read at the site and
 * one custodian per part. It is always a dual-control request, decided by
 * those custodians only (decide-approval.ts), and it runs when every one of
 * them has approved: the root KEK is made from parts derived in the HSM
 * (start-root-kek-ceremony.ts) and the site is told their KCVs. Each
 * custodian then fetches their own part, once (release-root-kek-part.ts).
 * Rules: custodians are distinct active approvers, not the requester; XOR
 * takes 2 or 3 parts, Shamir up to 5 with a threshold of 2 or more.
 */
@injectable()
export class RequestRootKekCeremony implements ApprovedActionRunner {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly approveListener: ApproveListener,
  ) {}

  async execute(listenerId: string, body: CeremonyBody, principal: Principal): Promise<{ approval: api.ApprovalRequestView }> {
    const scheme = body.threshold === undefined ? 'xor' : 'shamir';
    const threshold = body.threshold ?? body.parts;
    const max = scheme === 'xor' ? MAX_XOR_PARTS : MAX_SHAMIR_PARTS;
    if (body.parts < 2 || body.parts > max || threshold < 2 || threshold > body.parts) {
      throw new KeyhubError(
        'COMPONENT_INVALID',
        scheme === 'xor' ? `XOR components: 2 to ${MAX_XOR_PARTS} parts` : `Shamir shares: 2 to ${MAX_SHAMIR_PARTS} parts, threshold 2 to the number of parts`,
      );
    }
    if (body.custodians.length !== body.parts || new Set(body.custodians).size !== body.custodians.length) {
      throw new KeyhubError('CUSTODIANS_INVALID', `name ${body.parts} distinct custodians, one per part`);
    }
    if (body.custodians.includes(principal.name)) throw new KeyhubError('CUSTODIANS_INVALID', 'the requester cannot be one of the custodians');
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const stored = await this.approveListener.pendingFingerprint(m, listenerId);
      await this.custodianIds(m, body.custodians);
      if (!fingerprintsEqual(body.fingerprint, stored)) throw new KeyhubError('FINGERPRINT_MISMATCH', `fingerprint does not match the enrollment request of listener ${listenerId}`);
      const doc: ActionDocument = { action: 'listener.root_kek_components', listenerId, fingerprint: stored, scheme, threshold, custodians: body.custodians };
      return { approval: await this.dualControl.open(m, doc, body.custodians.length, principal) };
    });
  }

  async runInTransaction(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult> {
    if (doc.action !== 'listener.root_kek_components') throw new KeyhubError('INTERNAL', 'not a root KEK ceremony');
    const missing = doc.custodians.filter((c) => !run.approvers.includes(c));
    if (missing.length > 0) throw new KeyhubError('CUSTODIANS_INVALID', `custodian(s) ${missing.join(', ')} have not approved`);
    const custodians = await this.custodianIds(m, doc.custodians);
    const ceremonyId = randomUUID();
    const r = await this.approveListener.executeIn(m, doc.listenerId, doc.fingerprint, run.requester.name, run.approvers, {
      id: ceremonyId,
      scheme: doc.scheme,
      threshold: doc.threshold,
      custodians,
      requestedBy: run.requester.name,
    });
    if ('refused' in r) throw new KeyhubError('FINGERPRINT_MISMATCH', `the enrollment of ${doc.listenerId} changed since the request was made`);
    return { listenerId: doc.listenerId, kekId: r.kekId, kcv: r.kcv, ceremonyId };
  }

  /** Each custodian as an active operator with the approver role, in the order given. */
  private async custodianIds(m: EntityManager, names: string[]): Promise<Array<{ id: string; name: string }>> {
    const out: Array<{ id: string; name: string }> = [];
    for (const name of names) {
      const op = await operatorByName(m, name);
      if (!op || op.state !== 'active' || !op.roles.includes('approver')) throw new KeyhubError('CUSTODIANS_INVALID', `custodian ${name} is not an active operator with the approver role`);
      out.push({ id: op.id, name: op.name });
    }
    return out;
  }
}
