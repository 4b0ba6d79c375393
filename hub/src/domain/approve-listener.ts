import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { encodeEnvelope, fingerprintsEqual, MESSAGE_TYPES, subjects, type OaepHash, type RootKekMessage } from '@keyhub/protocol';
import { aesKcv, KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../audit/audit-log';
import { HubContext } from '../context';
import { KekEntity, ListenerEntity } from '../store/entities';
import { insertRows, notifyOutbox } from '../store/sql';

/**
 * Approves an enrollment after the operator compared fingerprints out of
 * band: creates the listener's root KEK in the hub HSM, stores it under the
 * master key, and queues it wrapped (RSA-OAEP) to the listener's transport key.
 * The listener becomes active only when it confirms the KEK's KCV.
 */
@injectable()
export class ApproveListener {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, fingerprint: string, actor: string): Promise<{ kekId: string; kcv: string }> {
    const { ds, keyring } = this.ctx;
    const hsm = keyring.hsm;
    type Outcome = { kekId: string; kcv: string } | { refused: true };
    const outcome = await ds.transaction(async (m): Promise<Outcome> => {
      const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no enrollment request from listener ${listenerId}`);
      if (listener.state !== 'pending_approval') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${listener.state}, not pending approval`);
      if (!fingerprintsEqual(fingerprint, listener.fingerprint)) {
        await appendAudit(m, [{ actor, action: 'listener.approval_refused', subject: `listener:${listenerId}`, details: { reason: 'FINGERPRINT_MISMATCH' } }]);
        // The refusal must be recorded even though the approval fails: commit it, then report.
        return { refused: true };
      }
      const kek = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
      let kcv: string;
      let wrapped: Buffer;
      let transportBlob: Buffer;
      try {
        kcv = await aesKcv(hsm, kek);
        wrapped = await keyring.wrapUnderMaster(kek);
        const transport = await hsm.importRsaWrappingKey(listener.transportKey);
        try {
          transportBlob = await hsm.wrapRsaOaep(transport, kek, listener.oaepHash as OaepHash);
        } finally {
          await hsm.destroy(transport);
        }
      } finally {
        await hsm.destroy(kek);
      }
      const kekId = randomUUID();
      const now = new Date();
      const message: RootKekMessage = {
        type: MESSAGE_TYPES.rootKek,
        id: randomUUID(),
        listenerId,
        issuedAt: now.toISOString(),
        hubKey: keyring.signingSpki.toString('base64'),
        kek: { id: kekId, version: 1, kcv, mechanism: 'RSA-OAEP', oaepHash: listener.oaepHash as OaepHash, blob: transportBlob.toString('base64') },
      };
      const envelope = await keyring.sign(message);
      await m.insert(KekEntity, { id: kekId, listenerId, version: 1, wrapped, kcv, state: 'pending_confirmation', activatedAt: null });
      await m.update(ListenerEntity, { id: listenerId }, { state: 'approved', approvedAt: now, approvedBy: actor });
      await insertRows(m, 'outbox', ['subject', 'msg_id', 'payload', 'distribution_id'], [[subjects.toListener(listenerId, 'root_kek'), message.id, Buffer.from(encodeEnvelope(envelope)), null]]);
      await notifyOutbox(m);
      await appendAudit(m, [
        { actor, action: 'listener.approved', subject: `listener:${listenerId}`, details: { fingerprint: listener.fingerprint } },
        { actor, action: 'kek.created', subject: `listener:${listenerId}`, details: { kekId, version: 1, kcv } },
      ]);
      return { kekId, kcv };
    });
    if ('refused' in outcome) throw new KeyhubError('FINGERPRINT_MISMATCH', `fingerprint does not match the enrollment request of listener ${listenerId}`);
    return outcome;
  }
}
