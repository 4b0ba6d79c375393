import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { encodeEnvelope, fingerprintsEqual, MESSAGE_TYPES, subjects, targetTransportFingerprint, type api, type OaepHash, type TargetKekMessage } from '@keyhub/protocol';
import { aesKcv, KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { targetKekMacData } from '../../crypto/row-mac';
import { ListenerEntity } from '../../store/entities';
import { insertOutboxMessages, notifyOutbox } from '../../store/queries/outbox';
import { lockPendingRequest, setTargetKekIssued, type RequestedTargetKekRow } from '../../store/queries/target-keks';
import { kindMismatch, knownTargetKind } from './register-target-kek-request';

/**
 * `keyhub listener target approve <listener> <target> --fingerprint F`: the
 * operator compared the transport key fingerprint the site printed with the
 * one the hub shows. Rules:
 * - the fingerprint is recomputed here, in the approval's transaction, from
 *   the stored transport key; a mismatch is audited and changes nothing else
 *   (FINGERPRINT_MISMATCH);
 * - the target KEK (AES-256) is made in the hub HSM as a session object,
 *   stored under the KEK store with a row MAC bound to its target, wrapped
 *   (RSA-OAEP, the site's hash) to the transport key made in the TARGET
 *   token, signed, and sent; it wraps nothing until the site confirms its
 *   KCV (confirm-target-kek.ts);
 * - a target the site did not report at enrollment joins the site's targets
 *   with this approval, as the kind the request named (the signed request
 *   plus this approval are the "signed update an operator approves"); one
 *   the hub knows as another kind is refused (TARGET_KIND_MISMATCH).
 * Under the `listener.target_approve` policy the approval is a dual-control
 * request first (request-target-kek-approval.ts), run through executeIn.
 */
@injectable()
export class ApproveTargetKek {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, target: string, fingerprint: string, actor: string): Promise<api.ApproveTargetKekResult> {
    const out = await this.ctx.ds.transaction((m) => this.executeIn(m, listenerId, target, fingerprint, actor, []));
    if ('refused' in out) throw new KeyhubError('FINGERPRINT_MISMATCH', `the fingerprint given does not match the transport key of target ${target}'s request`);
    return out;
  }

  /** The fingerprint of the request awaiting approval, recomputed from its stored transport key (for a dual-control request). */
  async pendingFingerprint(m: EntityManager, listenerId: string, target: string): Promise<string> {
    const row = await lockPendingRequest(m, listenerId, target);
    if (!row) throw new KeyhubError('TARGET_KEK_NOT_FOUND', `no KEK request awaiting approval for target ${target} of ${listenerId}`);
    return targetTransportFingerprint(listenerId, target, row.transport_key.toString('base64'));
  }

  /** In the caller's transaction (also the approved-action runner's); `refused` when the fingerprint does not match, audited. */
  async executeIn(m: EntityManager, listenerId: string, target: string, fingerprint: string, actor: string, approvers: string[]): Promise<api.ApproveTargetKekResult | { refused: true }> {
    const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
    if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
    if (listener.state !== 'active') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${listener.state}`);
    const row = await lockPendingRequest(m, listenerId, target);
    if (!row) throw new KeyhubError('TARGET_KEK_NOT_FOUND', `no KEK request awaiting approval for target ${target} of ${listenerId}`);
    const recomputed = targetTransportFingerprint(listenerId, target, row.transport_key.toString('base64'));
    // The kind the site asked for (rows from before it was recorded: pkcs11, as they were); a target the hub
    // came to know meanwhile as another kind (an approved target update) is not what the site asked for.
    const kind = row.kind ?? 'pkcs11';
    const knownKind = knownTargetKind(listener, target);
    if (knownKind !== undefined && knownKind !== kind) throw kindMismatch(listenerId, target, kind, knownKind);
    if (!fingerprintsEqual(fingerprint, recomputed)) {
      await appendAudit(m, [{ actor, action: 'target_kek.approval_refused', subject: `listener:${listenerId}`, details: { target, version: row.version, reason: 'FINGERPRINT_MISMATCH' } }]);
      return { refused: true };
    }
    const made = await this.makeKek(row);
    const mac = await this.ctx.keyring.macRow(targetKekMacData({ id: row.id, listenerId, target, version: row.version, kcv: made.kcv, wrapped: made.stored }));
    const message: TargetKekMessage = {
      type: MESSAGE_TYPES.targetKek,
      id: randomUUID(),
      listenerId,
      issuedAt: new Date().toISOString(),
      target,
      transportFingerprint: recomputed,
      kek: { id: row.id, version: row.version, kcv: made.kcv, mechanism: 'RSA-OAEP', oaepHash: row.oaep_hash, blob: made.transportBlob.toString('base64') },
    };
    const envelope = await this.ctx.keyring.sign(message);
    await setTargetKekIssued(m, row.id, { wrapped: made.stored, kcv: made.kcv, mac, approvedBy: actor });
    if (!listener.targets.some((t) => t.name === target)) {
      await m.update(ListenerEntity, { id: listenerId }, { targets: [...listener.targets, { name: target, kind }] });
    }
    await insertOutboxMessages(m, [[subjects.toListener(listenerId, 'target_kek'), message.id, Buffer.from(encodeEnvelope(envelope)), null]]);
    await notifyOutbox(m);
    const who: Record<string, string> = approvers.length ? { approvers: approvers.join(',') } : {};
    await appendAudit(m, [
      { actor, action: 'target_kek.created', subject: `listener:${listenerId}`, details: { target, kind, kekId: row.id, version: row.version, kcv: made.kcv, fingerprint: recomputed, ...who } },
    ]);
    return { listenerId, target, kekId: row.id, version: row.version, kcv: made.kcv };
  }

  /** The KEK exists in the hub HSM only as a session object for this call. */
  private async makeKek(row: RequestedTargetKekRow): Promise<{ kcv: string; stored: Buffer; transportBlob: Buffer }> {
    const { keyring } = this.ctx;
    const hsm = keyring.hsm;
    const kek = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    try {
      const kcv = await aesKcv(hsm, kek);
      const stored = await keyring.wrapRootKek(kek);
      const transport = await hsm.importRsaWrappingKey(row.transport_key);
      try {
        return { kcv, stored, transportBlob: await hsm.wrapRsaOaep(transport, kek, row.oaep_hash as OaepHash) };
      } finally {
        await hsm.destroy(transport);
      }
    } finally {
      await hsm.destroy(kek);
    }
  }
}
