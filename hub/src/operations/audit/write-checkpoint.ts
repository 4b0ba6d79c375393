import type { DataSource } from 'typeorm';
import { AUDIT_CHECKPOINT_TYPE, checkpointDigest, checkpointSignatureValid, encodeEnvelope, subjects, verifyAuditSegment, type AuditCheckpointMessage } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { GENESIS_HASH } from '../../audit/audit-hash';
import { AuditSealer, sealBroken, sealerFor } from '../../audit/audit-seal';
import type { StoredCheckpoint } from '../../audit/verify-audit';
import type { HubKeyring } from '../../crypto/hub-keyring';
import { auditHead, readAuditEvents } from '../../store/queries/audit';
import { insertChainedCheckpoint, lastCheckpoint, takeCheckpointLock, witnessListenerIds } from '../../store/queries/audit-checkpoints';
import { insertOutboxMessages, notifyOutbox } from '../../store/queries/outbox';

export type ChainedCheckpoint = StoredCheckpoint & { at: string; prevSeq: number; prevDigest: string };

/**
 * The newest checkpoint this process signed or verified. A database whose
 * newest checkpoint is older, or different, was cut back behind it: the
 * process refuses to sign on top (sites' copies catch it across restarts).
 */
export interface CheckpointMemory {
  highest?: { seq: number; digest: string };
}

/**
 * Signs the chain head, chained to the previous checkpoint, and sends it to
 * every active listener as a witness. No-op when the head is already
 * covered. Rules:
 * - the segment since the last checkpoint is verified first (the last
 *   checkpoint under this hub's own key from the HSM, never the key stored
 *   in the database; the events after it link and hash; the head's HSM seal
 *   verifies, which re-chained hashes cannot fake): the hub never signs a
 *   forged head; a broken segment is AUDIT_CHAIN_BROKEN and nothing is
 *   signed or stored (the job logs it at error level; appends on the same
 *   head fail too, so the hub stops taking actions it could not audit);
 * - checkpoints are one chain across replicas: one advisory lock, and at
 *   most one successor per checkpoint in the table;
 * - the checkpoint row and the witness messages commit together.
 */
export async function writeCheckpoint(ds: DataSource, keyring: HubKeyring, seen: CheckpointMemory = {}): Promise<ChainedCheckpoint | undefined> {
  const signed = await ds.transaction(async (m) => {
    await takeCheckpointLock(m);
    const last = await lastCheckpoint(m);
    const head = await auditHead(m);
    const headSeq = head ? Number(head.seq) : 0;
    if (last && last.seq > headSeq) throw broken(headSeq + 1, `the chain ends at ${headSeq} but a checkpoint covers event ${last.seq}: events were removed`);
    if (!head || last?.seq === headSeq) return undefined;
    if (seen.highest && (!last || last.seq < seen.highest.seq || (last.seq === seen.highest.seq && checkpointDigest(last) !== seen.highest.digest))) {
      throw broken(seen.highest.seq, `the checkpoint at event ${seen.highest.seq} that this hub signed or checked is gone or replaced: history was cut back`);
    }
    if (last && !checkpointSignatureValid(last, keyring.signingSpki)) throw broken(last.seq, `the last checkpoint (event ${last.seq}) is not signed by this hub's key`);
    if (last) seen.highest = { seq: last.seq, digest: checkpointDigest(last) };
    const segment = await verifyAuditSegment(readAuditEvents(m, last ? last.seq - 1 : 0), last, headSeq);
    if (!segment.ok) throw broken(segment.seq, segment.reason);
    // Hashes can be recomputed by anyone who can write the table; the head's seal only by this hub's HSM.
    await (sealerFor(m) ?? new AuditSealer(async () => keyring)).assertHead(m, head);

    const payload: AuditCheckpointMessage = {
      type: AUDIT_CHECKPOINT_TYPE,
      seq: headSeq,
      hash: head.hash,
      at: new Date().toISOString(),
      prevSeq: last?.seq ?? 0,
      prevDigest: last ? checkpointDigest(last) : GENESIS_HASH,
    };
    const envelope = await keyring.sign(payload);
    const cp: ChainedCheckpoint = { seq: payload.seq, hash: payload.hash, at: payload.at, prevSeq: payload.prevSeq, prevDigest: payload.prevDigest, signature: envelope.signature.value };
    await insertChainedCheckpoint(m, cp);
    const witnesses = await witnessListenerIds(m);
    if (witnesses.length) {
      const bytes = Buffer.from(encodeEnvelope(envelope));
      await insertOutboxMessages(
        m,
        witnesses.map((id) => [subjects.toListener(id, 'checkpoint'), `audit-checkpoint-${cp.seq}-${id}`, bytes, null]),
      );
      await notifyOutbox(m);
    }
    return cp;
  });
  // Remembered once committed: a rolled-back checkpoint must not count as one the database lost.
  if (signed) seen.highest = { seq: signed.seq, digest: checkpointDigest(signed) };
  return signed;
}

function broken(seq: number, reason: string): KeyhubError {
  return sealBroken(seq, reason);
}

/** `writeCheckpoint` as a use case object, for the scheduler and the API. */
export class WriteCheckpoint {
  private readonly seen: CheckpointMemory = {};

  constructor(
    private readonly ds: DataSource,
    private readonly keyring: HubKeyring,
  ) {}

  execute(): Promise<ChainedCheckpoint | undefined> {
    return writeCheckpoint(this.ds, this.keyring, this.seen);
  }
}
