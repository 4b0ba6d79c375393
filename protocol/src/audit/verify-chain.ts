import type { KeyObject } from 'node:crypto';
import { auditHash, GENESIS_HASH, type AuditRecord } from './chain-hash';
import { checkpointDigest, checkpointLinkProblems, checkpointSignatureValid, publicKeyObject, type StoredCheckpoint } from './checkpoint-chain';

export type { StoredCheckpoint } from './checkpoint-chain';

export interface StoredAuditEvent extends AuditRecord {
  prevHash: string;
  hash: string;
}

export interface AuditVerification {
  ok: boolean;
  events: number;
  checkpoints: number;
  head?: { seq: number; hash: string };
  firstBad?: { seq: number; reason: string };
  /** With a site's copy: how many checkpoints it holds, and the last event they cover. */
  witnessed?: { checkpoints: number; lastSeq: number };
}

export interface VerifyOptions {
  /**
   * Checkpoints a site kept (its witness copy). Each must be signed by the
   * trusted key, and the hub's history must hold it unchanged: the same
   * checkpoint, and the same event hash at its seq.
   */
  witness?: StoredCheckpoint[];
  /**
   * Go on from a head this caller verified itself earlier (seq and hash of
   * its last event, held by the caller, never read from the data): `events`
   * then start at resume.seq + 1. Only for a caller that knows events 1..seq
   * and the checkpoints up to seq are still byte for byte what it verified
   * (the checkpoints up to seq are not matched against events again).
   * Not combined with a witness copy.
   */
  resume?: { seq: number; hash: string };
}

/**
 * Walks the chain in order: sequence numbers must be contiguous from 1, each
 * event must point at its predecessor's hash and hash to its own.
 * Checkpoints must match the chain, link to each other and carry a valid
 * signature under `trustedKey`, which is a key the caller pinned (by
 * fingerprint, or the key a site pinned), never one read from the data
 * being verified. A checkpoint, or a site's checkpoint, beyond the last
 * event means events were removed from the end.
 */
export async function verifyAuditChain(
  events: AsyncIterable<StoredAuditEvent> | Iterable<StoredAuditEvent>,
  checkpoints: StoredCheckpoint[],
  trustedKey: Buffer | KeyObject,
  options: VerifyOptions = {},
): Promise<AuditVerification> {
  const key = publicKeyObject(trustedKey);
  const sorted = [...checkpoints].sort((a, b) => a.seq - b.seq);
  const problems = checkpointLinkProblems(sorted);
  for (const cp of sorted) {
    if (!problems.has(cp.seq) && !checkpointSignatureValid(cp, key)) problems.set(cp.seq, `checkpoint at event ${cp.seq}: signature does not verify under the pinned hub key`);
  }
  const bySeq = new Map(sorted.map((c) => [c.seq, c]));
  const witness = witnessBySeq(options.witness ?? [], key);
  const witnessed = options.witness ? { checkpoints: options.witness.length, lastSeq: Math.max(0, ...witness.keys()) } : undefined;

  if (options.resume && options.witness) throw new TypeError('a resumed verification takes no witness copy');
  let expectedSeq = options.resume ? options.resume.seq + 1 : 1;
  let prev = options.resume ? options.resume.hash : GENESIS_HASH;
  let count = options.resume ? options.resume.seq : 0;
  const fail = (seq: number, reason: string): AuditVerification => ({ ok: false, events: count, checkpoints: checkpoints.length, firstBad: { seq, reason }, ...(witnessed ? { witnessed } : {}) });

  for await (const e of events) {
    if (e.seq !== expectedSeq) return fail(expectedSeq, e.seq > expectedSeq ? `event ${expectedSeq} is missing` : `event ${e.seq} is out of order`);
    if (e.prevHash !== prev) return fail(e.seq, 'previous-hash link is broken');
    if (auditHash(prev, e) !== e.hash) return fail(e.seq, 'content does not match its hash');
    const w = witness.get(e.seq);
    if (w) {
      if ('problem' in w) return fail(e.seq, w.problem);
      if (w.cp.hash !== e.hash) return fail(e.seq, `event ${e.seq} differs from the site's signed checkpoint: history was rewritten`);
      const held = bySeq.get(e.seq);
      if (!held || checkpointDigest(held) !== w.digest) return fail(e.seq, `the hub's checkpoint at event ${e.seq} is ${held ? 'not the one' : 'missing, unlike in'} the site's copy`);
    }
    const cp = bySeq.get(e.seq);
    if (cp) {
      const problem = problems.get(e.seq);
      if (problem) return fail(e.seq, problem);
      if (cp.hash !== e.hash) return fail(e.seq, 'checkpoint hash differs from the chain');
    }
    prev = e.hash;
    expectedSeq++;
    count++;
  }
  const lastEvent = expectedSeq - 1;
  const lost = [...witness.keys()].filter((s) => s > lastEvent).sort((a, b) => a - b)[0];
  if (lost !== undefined) return fail(expectedSeq, `chain ends at ${lastEvent} but the site holds a checkpoint at event ${lost}: events were removed`);
  const beyond = sorted.find((c) => c.seq > lastEvent);
  if (beyond) return fail(expectedSeq, `chain ends at ${lastEvent} but a checkpoint covers ${beyond.seq}: events were removed`);
  return { ok: true, events: count, checkpoints: checkpoints.length, head: count ? { seq: lastEvent, hash: prev } : undefined, ...(witnessed ? { witnessed } : {}) };
}

export type WitnessEntry = { cp: StoredCheckpoint; digest: string } | { problem: string };

/** A site's copy by seq: each one checked under the trusted key; two different checkpoints for one event are a fork. */
export function witnessBySeq(copy: StoredCheckpoint[], key: KeyObject): Map<number, WitnessEntry> {
  const out = new Map<number, WitnessEntry>();
  for (const cp of copy) {
    const digest = checkpointDigest(cp);
    const seen = out.get(cp.seq);
    if (seen && 'digest' in seen && seen.digest === digest) continue;
    if (seen) out.set(cp.seq, { problem: `the site holds two different hub-signed checkpoints for event ${cp.seq}: the hub signed two histories` });
    else if (!checkpointSignatureValid(cp, key)) out.set(cp.seq, { problem: `the site's checkpoint at event ${cp.seq} is not signed by the pinned hub key` });
    else out.set(cp.seq, { cp, digest });
  }
  return out;
}
