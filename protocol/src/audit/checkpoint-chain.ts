import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { canonicalBytes } from '../canonical';
import { verifyEnvelope, type SignedEnvelope } from '../envelope';
import { AUDIT_CHECKPOINT_TYPE, type AuditCheckpointMessage } from '../messages/checkpoints';
import { checkpointBytes, GENESIS_HASH } from './chain-hash';

/**
 * A checkpoint as stored and exported. Chained checkpoints (every one made
 * since the checkpoint chain exists) carry `at`, `prevSeq` and `prevDigest`
 * and are signed over their `keyhub.v1.audit_checkpoint` payload. Legacy
 * ones carry only (seq, hash), signed over `checkpointBytes`; they are
 * accepted only before the first chained one, which links to the last.
 */
export interface StoredCheckpoint {
  seq: number;
  hash: string;
  /** Base64 raw r||s ECDSA P-256 signature. */
  signature: string;
  at?: string;
  prevSeq?: number;
  prevDigest?: string;
}

/** What the first checkpoint links to. */
export const CHECKPOINT_GENESIS = { seq: 0, digest: GENESIS_HASH } as const;

export function isChainedCheckpoint(cp: StoredCheckpoint): cp is StoredCheckpoint & { at: string; prevSeq: number; prevDigest: string } {
  return cp.at !== undefined && cp.prevSeq !== undefined && cp.prevDigest !== undefined;
}

/** The signed payload of a chained checkpoint. */
export function checkpointPayload(cp: StoredCheckpoint & { at: string; prevSeq: number; prevDigest: string }): AuditCheckpointMessage {
  return { type: AUDIT_CHECKPOINT_TYPE, seq: cp.seq, hash: cp.hash, at: cp.at, prevSeq: cp.prevSeq, prevDigest: cp.prevDigest };
}

/** The bytes the hub signed: the canonical payload, or the legacy (seq, hash) statement. */
export function checkpointSignedBytes(cp: StoredCheckpoint): Buffer {
  return isChainedCheckpoint(cp) ? canonicalBytes(checkpointPayload(cp)) : checkpointBytes(cp.seq, cp.hash);
}

/** SHA-256 (hex) of the signed bytes: what the next checkpoint names as `prevDigest`, and what sites are compared by. */
export function checkpointDigest(cp: StoredCheckpoint): string {
  return createHash('sha256').update(checkpointSignedBytes(cp)).digest('hex');
}

export function publicKeyObject(key: Buffer | KeyObject): KeyObject {
  return Buffer.isBuffer(key) ? createPublicKey({ key, format: 'der', type: 'spki' }) : key;
}

/** True when the checkpoint is signed by `key` (always a key the caller pinned, never one read from the data). */
export function checkpointSignatureValid(cp: StoredCheckpoint, key: Buffer | KeyObject): boolean {
  try {
    if (isChainedCheckpoint(cp)) return verifyEnvelope({ payload: checkpointPayload(cp), signature: { alg: 'ES256', keyId: '', value: cp.signature } }, publicKeyObject(key));
    return verify('sha256', checkpointBytes(cp.seq, cp.hash), { key: publicKeyObject(key), dsaEncoding: 'ieee-p1363' }, Buffer.from(cp.signature, 'base64'));
  } catch {
    return false;
  }
}

/** A checkpoint as it travels to the sites: its payload in an ES256 envelope. */
export function checkpointEnvelope(cp: StoredCheckpoint & { at: string; prevSeq: number; prevDigest: string }, keyId: string): SignedEnvelope<AuditCheckpointMessage> {
  return { payload: checkpointPayload(cp), signature: { alg: 'ES256', keyId, value: cp.signature } };
}

/** The stored form of a checkpoint that arrived as a message. Only an ES256 signature is a checkpoint signature. */
export function checkpointFromEnvelope(envelope: SignedEnvelope<AuditCheckpointMessage>): StoredCheckpoint | undefined {
  if (envelope.signature.alg !== 'ES256') return undefined;
  const p = envelope.payload;
  return { seq: p.seq, hash: p.hash, signature: envelope.signature.value, at: p.at, prevSeq: p.prevSeq, prevDigest: p.prevDigest };
}

/**
 * The checkpoint chain's own rules, for a complete list (the hub's): one
 * checkpoint per event at most, in order; legacy ones only before the first
 * chained one; each chained one names its predecessor in the list (or the
 * genesis). Returns the problems by checkpoint seq. `from` is what the
 * first one must link to: the genesis for a whole list, or, for a range
 * export that starts at a checkpoint, that checkpoint's own signed link.
 */
export function checkpointLinkProblems(checkpoints: StoredCheckpoint[], from: { seq: number; digest: string } = CHECKPOINT_GENESIS): Map<number, string> {
  const problems = new Map<number, string>();
  let prev: { seq: number; digest: string } = from;
  let chainedSeen = false;
  for (const cp of checkpoints) {
    if (cp.seq <= prev.seq) problems.set(cp.seq, `checkpoint at event ${cp.seq} is out of order or repeated`);
    else if (!isChainedCheckpoint(cp)) {
      if (chainedSeen) problems.set(cp.seq, `checkpoint at event ${cp.seq} is unchained but follows chained checkpoints`);
    } else {
      chainedSeen = true;
      if (cp.prevSeq !== prev.seq || cp.prevDigest !== prev.digest) {
        problems.set(cp.seq, `checkpoint at event ${cp.seq} does not link to the previous checkpoint (it names event ${cp.prevSeq}, the list has ${prev.seq}): a checkpoint was removed or replaced`);
      }
    }
    prev = { seq: cp.seq, digest: checkpointDigest(cp) };
  }
  return problems;
}
