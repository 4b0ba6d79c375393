import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { encodeEnvelope, enrollmentFingerprint, fingerprintsEqual, MESSAGE_TYPES, subjects, type OaepHash, type RootKekCeremony, type RootKekMessage } from '@keyhub/protocol';
import { aesKcv, KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { kekMacData } from '../../crypto/row-mac';
import { KekEntity, ListenerEntity } from '../../store/entities';
import { insertOutboxMessages, notifyOutbox } from '../../store/queries/outbox';
import { listenerCredentialsOutboxRow } from '../../nats/listener-identity';
import { findRegistration } from '../../store/queries/nats-identities';
import { nextKekVersion } from '../../store/queries/site-lifecycle';
import { startCeremony, type CeremonyRequest } from './start-root-kek-ceremony';

/** The fingerprint of what is stored for a listener: its id, identity, transport and NATS user keys (as the listener computes it). */
async function storedKeysFingerprint(m: EntityManager, l: ListenerEntity): Promise<string> {
  const registration = await findRegistration(m, l.id);
  return enrollmentFingerprint(l.id, l.identityKey.toString('base64'), l.transportKey.toString('base64'), registration?.nats_user_key ?? undefined);
}

/** A new root KEK as the HSM made it: its KCV, its blob under the KEK store, and under the listener's transport key. */
interface NewRootKek {
  kcv: string;
  wrapped: Buffer;
  transportBlob: Buffer;
}

/**
 * Approves an enrollment after the operator compared fingerprints out of
 * band: creates the listener's root KEK in the hub HSM, stores it under the
 * master key, and queues it wrapped (RSA-OAEP) to the listener's transport key.
 * Rule: only a pending listener whose fingerprint matches is approved (a
 * mismatch is audited and refused); the listener becomes active only when it
 * confirms the KEK's KCV.
 */
@injectable()
export class ApproveListener {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, fingerprint: string, actor: string): Promise<{ kekId: string; kcv: string }> {
    const outcome = await this.ctx.ds.transaction((m) => this.executeIn(m, listenerId, fingerprint, actor, []));
    if ('refused' in outcome) throw new KeyhubError('FINGERPRINT_MISMATCH', `fingerprint does not match the enrollment request of listener ${listenerId}`);
    return outcome;
  }

  /**
   * The enrollment fingerprint of a listener waiting for approval, under the
   * caller's lock: recomputed from the stored identity and transport keys,
   * never read from the fingerprint column (the database is not trusted: a
   * transport key swapped in the row must not match what the operator saw).
   */
  async pendingFingerprint(m: EntityManager, listenerId: string): Promise<string> {
    return storedKeysFingerprint(m, await this.lockPending(m, listenerId));
  }

  /**
   * The approval inside the caller's transaction (an approved dual-control
   * request runs it in the one that checks the quorum). A mismatch is
   * audited and returned as refused, so that the caller can commit the
   * record of it and then report.
   */
  async executeIn(
    m: EntityManager,
    listenerId: string,
    fingerprint: string,
    actor: string,
    approvers: string[],
    ceremony?: CeremonyRequest,
  ): Promise<{ kekId: string; kcv: string } | { refused: true }> {
    const { keyring } = this.ctx;
    const listener = await this.lockPending(m, listenerId);
    // Recomputed here, in the approval's transaction, from the keys the root KEK will be wrapped to.
    const recomputed = await storedKeysFingerprint(m, listener);
    if (!fingerprintsEqual(fingerprint, recomputed)) {
      const columnAltered = !fingerprintsEqual(listener.fingerprint, recomputed);
      await appendAudit(m, [{ actor, action: 'listener.approval_refused', subject: `listener:${listenerId}`, details: { reason: 'FINGERPRINT_MISMATCH', storedKeysChanged: columnAltered } }]);
      return { refused: true };
    }
    const kekId = randomUUID();
    // 1 at first enrollment; after a compromised root KEK the site enrolls again and versions go on growing.
    const version = await nextKekVersion(m, listenerId);
    const now = new Date();
    let kcv: string;
    let wrapped: Buffer;
    let message: RootKekMessage | RootKekCeremony;
    let method: Record<string, string | number> = { method: 'transport_key' };
    if (ceremony) {
      const made = await startCeremony(m, keyring, { ...ceremony, listenerId, kekId, kekVersion: version, issuedAt: now });
      ({ kcv, wrapped, message } = made);
      method = { method: 'components', ceremonyId: ceremony.id, scheme: ceremony.scheme, parts: ceremony.custodians.length, threshold: ceremony.threshold, partKcvs: made.partKcvs.join(',') };
    } else {
      const made = await this.createRootKek(listener);
      ({ kcv, wrapped } = made);
      message = {
        type: MESSAGE_TYPES.rootKek,
        id: randomUUID(),
        listenerId,
        issuedAt: now.toISOString(),
        hubKey: keyring.signingSpki.toString('base64'),
        kek: { id: kekId, version, kcv, mechanism: 'RSA-OAEP', oaepHash: listener.oaepHash as OaepHash, blob: made.transportBlob.toString('base64') },
      };
    }
    const envelope = await keyring.sign(message);
    const mac = await keyring.macRow(kekMacData({ id: kekId, listenerId, version, kcv, wrapped }));
    await m.insert(KekEntity, { id: kekId, listenerId, version, wrapped, kcv, mac, state: 'pending_confirmation', activatedAt: null });
    await m.update(ListenerEntity, { id: listenerId }, { state: 'approved', approvedAt: now, approvedBy: actor });
    // The site's own NATS user JWT goes with its root KEK: the answer its bootstrap credential reads.
    await insertOutboxMessages(m, [await listenerCredentialsOutboxRow(m, keyring, listenerId), [subjects.toListener(listenerId, 'root_kek'), message.id, Buffer.from(encodeEnvelope(envelope)), null]]);
    await notifyOutbox(m);
    const who: Record<string, string> = approvers.length ? { approvers: approvers.join(',') } : {};
    await appendAudit(m, [
      { actor, action: 'listener.approved', subject: `listener:${listenerId}`, details: { fingerprint: recomputed, ...who } },
      { actor, action: 'kek.created', subject: `listener:${listenerId}`, details: { kekId, version, kcv, ...method } },
    ]);
    return { kekId, kcv };
  }

  private async lockPending(m: EntityManager, listenerId: string): Promise<ListenerEntity> {
    const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
    if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no enrollment request from listener ${listenerId}`);
    if (listener.state !== 'pending_approval') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${listener.state}, not pending approval`);
    return listener;
  }

  /** The root KEK exists in the HSM only as a session object for the length of this call. */
  private async createRootKek(listener: ListenerEntity): Promise<NewRootKek> {
    const { keyring } = this.ctx;
    const hsm = keyring.hsm;
    const kek = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    try {
      const kcv = await aesKcv(hsm, kek);
      const wrapped = await keyring.wrapRootKek(kek);
      const transport = await hsm.importRsaWrappingKey(listener.transportKey);
      try {
        return { kcv, wrapped, transportBlob: await hsm.wrapRsaOaep(transport, kek, listener.oaepHash as OaepHash) };
      } finally {
        await hsm.destroy(transport);
      }
    } finally {
      await hsm.destroy(kek);
    }
  }
}
