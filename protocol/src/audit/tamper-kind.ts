import { auditHash, type AuditRecord } from './chain-hash';
import type { StoredAuditEvent } from './verify-chain';

/**
 * What was done to the ledger, as far as the verifier can tell from the
 * data in front of it:
 * - changed: an event's content, time, sequence number or link no longer
 *   produces the hash the chain holds for it;
 * - deleted: events are missing (a sequence gap, or a renumbered event whose
 *   hash only reproduces at a higher sequence number);
 * - inserted: an event that is not part of the chain (its successor links to
 *   its predecessor, or it repeats a sequence number);
 * - reordered: two neighbours that chain when swapped back;
 * - truncated: the ledger ends before, or was regrown past, a signed
 *   checkpoint the verifier holds (in the export or in a site's copy);
 * - forged: a checkpoint record is not the hub's (its signature does not
 *   verify under the pinned key, the checkpoint chain misses or replaces a
 *   link, a site holds a checkpoint the ledger lacks, or two for one event).
 */
export type TamperKind = 'changed' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'forged';
export const TAMPER_KINDS: readonly TamperKind[] = ['changed', 'deleted', 'inserted', 'reordered', 'truncated', 'forged'];

/**
 * The first bad event: `seq` is the first position in the ledger that is
 * wrong; `id` is the hash the event at that position is known by (events
 * have no other identity than seq and hash): the stored hash of the event
 * found there, or, for a missing event, the hash its successor still names;
 * null when the verifier cannot know it.
 */
export interface TamperFinding {
  kind: TamperKind;
  seq: number;
  id: string | null;
  detail: string;
}

/** The last event the verifier accepted: seq 0 and the genesis hash before the first one. */
export interface ChainAnchor {
  seq: number;
  hash: string;
}

/** How far a renumbered event is searched for its original sequence number. */
export const MAX_RENUMBER_SHIFT = 64;

function hashAt(e: AuditRecord, seq: number, prevHash: string): string {
  return auditHash(prevHash, { ...e, seq });
}

/** True when the event, as stored, is authentic at `seq` (its content, prevHash and `seq` produce its hash). */
function authenticAt(e: StoredAuditEvent, seq: number): boolean {
  return hashAt(e, seq, e.prevHash) === e.hash;
}

/** The sequence number above `seq` at which the event's hash reproduces: it was renumbered down after deletions. */
function originalSeqAbove(e: StoredAuditEvent, seq: number): number | undefined {
  for (let s = seq + 1; s <= seq + MAX_RENUMBER_SHIFT; s++) if (authenticAt(e, s)) return s;
  return undefined;
}

/**
 * Classifies the first break after `anchor`. `rows` are the stored events
 * that follow the anchor, in stored order, with as many further rows as the
 * caller could read (three after the first suffice for every rule here).
 * The chain hash covers the sequence number, the content and the previous
 * hash, so a row moved to another position no longer reproduces its hash
 * there, but does at its original position; that is what tells a reorder,
 * an insertion or a renumbering deletion from an edit. Rules, in order, at
 * the first row r0 that is not in place (expected seq E after hash P), with
 * r1 its successor:
 * 1. r0 is in place but r1 links to r0's predecessor: r0 was inserted.
 *    If r0 is in place and r1 fails, the same rules apply one step later;
 *    an r1 that is authentic at E+1 but names another hash for E means r0
 *    was changed and re-hashed.
 * 2. r1 is authentic at E after P and r0 at E+1 after r1 (rows swapped), or
 *    their contents hash in each other's slots (contents swapped): reordered.
 * 3. r0 repeats a sequence number already passed: inserted.
 * 4. r0 jumps past E, or hashes only at a higher sequence number: deleted.
 * 5. r1 links to P (r0's predecessor): r0 was inserted.
 * 6. Otherwise r0 no longer reproduces its own hash, or its link was
 *    edited: changed.
 * What no rule can see: a rewrite that recomputes every later hash; only a
 * signed checkpoint catches that (see judgeCheckpointMismatch).
 */
export function classifyBreak(anchor: ChainAnchor, rows: readonly StoredAuditEvent[]): TamperFinding {
  let a = anchor;
  for (let i = 0; i < rows.length; i++) {
    const [r0, r1] = [rows[i], rows[i + 1]];
    const E = a.seq + 1;
    const placed = r0.seq === E && r0.prevHash === a.hash && authenticAt(r0, E);
    if (!placed) return judgeMisplaced(a, rows.slice(i));
    if (r1 && r1.prevHash !== r0.hash) return judgeOrphaned(a, rows.slice(i));
    a = { seq: E, hash: r0.hash };
  }
  return { kind: 'changed', seq: a.seq + 1, id: null, detail: `the chain breaks after event ${a.seq}, but the rows read do not show how` };
}

/** r0 is authentic at its place, but its successor does not link to it. */
function judgeOrphaned(a: ChainAnchor, rows: readonly StoredAuditEvent[]): TamperFinding {
  const [r0, r1] = rows;
  const E = a.seq + 1;
  if (r1.prevHash === a.hash) {
    return { kind: 'inserted', seq: E, id: r0.hash, detail: `event ${E} is not part of the chain: the event after it links to event ${a.seq}, its predecessor` };
  }
  const next = judgeMisplaced({ seq: E, hash: r0.hash }, rows.slice(1));
  if (next.kind !== 'changed') return next;
  // r1 is itself authentic at E+1 but names another hash for E: E was edited and its hash recomputed.
  if (r1.seq === E + 1 && authenticAt(r1, E + 1)) {
    return { kind: 'changed', seq: E, id: r0.hash, detail: `event ${E} was changed and its hash recomputed: event ${E + 1} still names its original hash ${r1.prevHash}` };
  }
  return next;
}

function judgeMisplaced(a: ChainAnchor, rows: readonly StoredAuditEvent[]): TamperFinding {
  const [r0, r1] = rows;
  const E = a.seq + 1;
  const P = a.hash;
  if (r1 && swappedRows(r0, r1, E, P)) {
    return { kind: 'reordered', seq: E, id: r0.hash, detail: `events ${E} and ${E + 1} are swapped: each reproduces its hash only at the other's place` };
  }
  if (r1 && swappedContents(r0, r1, E, P)) {
    return { kind: 'reordered', seq: E, id: r0.hash, detail: `the contents of events ${E} and ${E + 1} are swapped: each hashes only in the other's slot` };
  }
  if (r0.seq < E) return { kind: 'inserted', seq: r0.seq, id: r0.hash, detail: `a second event claims sequence number ${r0.seq} (after event ${a.seq})` };
  if (r0.seq > E) {
    const n = r0.seq - E;
    return {
      kind: 'deleted',
      seq: E,
      id: n === 1 && r0.prevHash !== P ? r0.prevHash : null,
      detail: `event${n === 1 ? ` ${E} is` : `s ${E} to ${r0.seq - 1} are`} missing: the chain jumps from ${a.seq} to ${r0.seq}`,
    };
  }
  if (r0.prevHash !== P) {
    const original = originalSeqAbove(r0, E);
    if (original !== undefined) {
      const n = original - E;
      return {
        kind: 'deleted',
        seq: E,
        id: n === 1 ? r0.prevHash : null,
        detail: `${n === 1 ? `event ${E} was` : `${n} events from ${E} were`} removed and the rest renumbered: the event now at ${E} hashes only as event ${original}`,
      };
    }
  }
  if (r1 && r1.prevHash === P) {
    const renumbered = r1.seq !== E && authenticAt(r1, E) ? ` (and was renumbered from ${E} to ${r1.seq})` : '';
    return { kind: 'inserted', seq: E, id: r0.hash, detail: `event ${E} is not part of the chain: the event after it links to event ${a.seq}, its predecessor${renumbered}` };
  }
  if (r0.prevHash !== P) {
    return { kind: 'changed', seq: E, id: r0.hash, detail: `event ${E} no longer links to event ${a.seq}: its previous-hash link was changed` };
  }
  const kept = r1 && r1.prevHash === r0.hash ? `; its stored hash, which event ${E + 1} still links to, is the original` : '';
  return { kind: 'changed', seq: E, id: r0.hash, detail: `the content of event ${E} no longer produces its stored hash${kept}` };
}

/** r1 belongs at E after P, and r0 right after r1: the two rows were swapped (with their sequence numbers, or in file order). */
function swappedRows(r0: StoredAuditEvent, r1: StoredAuditEvent, E: number, P: string): boolean {
  return r1.prevHash === P && authenticAt(r1, E) && r0.prevHash === r1.hash && authenticAt(r0, E + 1);
}

/** Hashes and links stayed in place, the contents moved: r1's content hashes in r0's slot and r0's in r1's. */
function swappedContents(r0: StoredAuditEvent, r1: StoredAuditEvent, E: number, P: string): boolean {
  if (r0.prevHash !== P || r1.prevHash !== r0.hash) return false;
  return hashAt(r1, E, P) === r0.hash && hashAt(r0, E + 1, r0.hash) === r1.hash;
}

/** The ledger ends at `lastSeq`, before a signed checkpoint at `checkpoint.seq` that the verifier holds. */
export function judgeEndsBefore(lastSeq: number, checkpoint: { seq: number; hash: string }, holder: string): TamperFinding {
  return {
    kind: 'truncated',
    seq: lastSeq + 1,
    id: checkpoint.seq === lastSeq + 1 ? checkpoint.hash : null,
    detail: `the ledger ends at event ${lastSeq}, but ${holder} holds a signed checkpoint at event ${checkpoint.seq}: events were removed from the end`,
  };
}

/**
 * The event at a signed checkpoint's seq links and hashes, but its hash is
 * not the signed one: everything after `sinceSeq` (the last checkpoint that
 * matched) may have been rewritten, with every later hash recomputed. If an
 * event there is dated after the checkpoint was signed (`writtenAfter`),
 * the ledger was cut back past the checkpoint and grew again: truncated,
 * from that event. Otherwise the history was re-chained: changed, from the
 * first event the last good checkpoint does not cover. Which event in the
 * window was rewritten cannot be known without the original: the signed
 * hash covers the window as a whole.
 */
export function judgeCheckpointMismatch(checkpoint: { seq: number; hash: string; at?: string }, sinceSeq: number, holder: string, writtenAfter?: { seq: number; hash: string }): TamperFinding {
  if (writtenAfter) {
    return {
      kind: 'truncated',
      seq: writtenAfter.seq,
      id: writtenAfter.hash,
      detail: `event ${checkpoint.seq} is not the one ${holder} signed at ${checkpoint.at ?? '?'}, and events from ${writtenAfter.seq} are dated after that signature: the ledger was cut back past the checkpoint and regrown`,
    };
  }
  return {
    kind: 'changed',
    seq: sinceSeq + 1,
    id: null,
    detail: `event ${checkpoint.seq} is not the one ${holder} signed (${checkpoint.hash}): events ${sinceSeq + 1} to ${checkpoint.seq} were rewritten and re-chained`,
  };
}
