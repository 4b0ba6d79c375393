import { auditHash, GENESIS_HASH } from './chain-hash';
import type { StoredAuditEvent } from './verify-chain';

export type SegmentVerification = { ok: true; events: number } | { ok: false; seq: number; reason: string };

/**
 * Checks the part of the chain a new checkpoint would vouch for: from the
 * event the last checkpoint covers (`from`, whose stored content must still
 * hash to the checkpoint's hash; none for the first checkpoint) up to
 * `to`. `events` must start at `from.seq` (or 1) and may run past `to`.
 * Rule: the hub signs a head only after everything since its last
 * signature verifies, so it never signs a forged head.
 */
export async function verifyAuditSegment(
  events: AsyncIterable<StoredAuditEvent> | Iterable<StoredAuditEvent>,
  from: { seq: number; hash: string } | undefined,
  to: number,
): Promise<SegmentVerification> {
  let expected = from ? from.seq : 1;
  let prev = from ? undefined : GENESIS_HASH;
  let count = 0;
  for await (const e of events) {
    if (e.seq > to) break;
    if (e.seq !== expected) return { ok: false, seq: expected, reason: e.seq > expected ? `event ${expected} is missing` : `event ${e.seq} is out of order` };
    if (prev === undefined) {
      // The checkpointed event itself: its hash must be the signed one, and its content must still produce it.
      if (e.hash !== from?.hash) return { ok: false, seq: e.seq, reason: `event ${e.seq} no longer has the hash its checkpoint signed` };
      if (auditHash(e.prevHash, e) !== e.hash) return { ok: false, seq: e.seq, reason: 'content does not match its hash' };
    } else {
      if (e.prevHash !== prev) return { ok: false, seq: e.seq, reason: 'previous-hash link is broken' };
      if (auditHash(prev, e) !== e.hash) return { ok: false, seq: e.seq, reason: 'content does not match its hash' };
      count++;
    }
    prev = e.hash;
    expected++;
  }
  if (expected <= to) return { ok: false, seq: expected, reason: `event ${expected} is missing` };
  return { ok: true, events: count };
}
