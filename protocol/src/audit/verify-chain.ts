import { createPublicKey, verify } from 'node:crypto';
import { auditHash, checkpointBytes, GENESIS_HASH, type AuditRecord } from './chain-hash';

export interface StoredAuditEvent extends AuditRecord {
  prevHash: string;
  hash: string;
}

export interface StoredCheckpoint {
  seq: number;
  hash: string;
  signature: string;
}

export interface AuditVerification {
  ok: boolean;
  events: number;
  checkpoints: number;
  head?: { seq: number; hash: string };
  firstBad?: { seq: number; reason: string };
}

/**
 * Walks the chain in order: sequence numbers must be contiguous from 1, each
 * event must point at its predecessor's hash and hash to its own. Checkpoints
 * must match the chain and carry a valid hub signature; a checkpoint beyond
 * the last event means events were removed from the end.
 */
export async function verifyAuditChain(
  events: AsyncIterable<StoredAuditEvent> | Iterable<StoredAuditEvent>,
  checkpoints: StoredCheckpoint[],
  hubSigningKey: Buffer,
): Promise<AuditVerification> {
  const key = createPublicKey({ key: hubSigningKey, format: 'der', type: 'spki' });
  const bySeq = new Map(checkpoints.map((c) => [c.seq, c]));
  let expectedSeq = 1;
  let prev = GENESIS_HASH;
  let count = 0;
  const fail = (seq: number, reason: string): AuditVerification => ({ ok: false, events: count, checkpoints: checkpoints.length, firstBad: { seq, reason } });

  for await (const e of events) {
    if (e.seq !== expectedSeq) return fail(expectedSeq, e.seq > expectedSeq ? `event ${expectedSeq} is missing` : `event ${e.seq} is out of order`);
    if (e.prevHash !== prev) return fail(e.seq, 'previous-hash link is broken');
    if (auditHash(prev, e) !== e.hash) return fail(e.seq, 'content does not match its hash');
    const cp = bySeq.get(e.seq);
    if (cp) {
      if (cp.hash !== e.hash) return fail(e.seq, 'checkpoint hash differs from the chain');
      if (!verify('sha256', checkpointBytes(cp.seq, cp.hash), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(cp.signature, 'base64'))) {
        return fail(e.seq, 'checkpoint signature does not verify under the hub signing key');
      }
    }
    prev = e.hash;
    expectedSeq++;
    count++;
  }
  const beyond = checkpoints.find((c) => c.seq >= expectedSeq);
  if (beyond) return fail(expectedSeq, `chain ends at ${expectedSeq - 1} but a checkpoint covers ${beyond.seq}: events were removed`);
  return { ok: true, events: count, checkpoints: checkpoints.length, head: count ? { seq: expectedSeq - 1, hash: prev } : undefined };
}
