import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { canonicalBytes } from './canonical';
import { type ErrorCode } from './errors';
import { LIMITS } from './limits';
import { leafHash, MAX_AUDIT_PATH, rootFromAuditPath } from './merkle';
import { messageSchema, type Message, type MessageOf, type MessageType } from './messages';

/** Where a payload sits in a batch signed as one Merkle tree: its leaf index, the tree size and the leaf's audit path. */
export interface BatchProof {
  size: number;
  index: number;
  /** Base64 SHA-256 hashes, leaf to root (RFC 9162 inclusion proof). */
  path: string[];
}

/**
 * A signed message: the payload plus an ECDSA P-256 signature (raw r||s, as a
 * PKCS#11 token produces it).
 * - `ES256`: the signature is over the RFC 8785 canonical bytes of the payload.
 * - `ES256-MERKLE`: the signer signed a batch of payloads at once: the
 *   signature is over the canonical bytes of a batch statement
 *   `{type: "keyhub.v1.signed_batch", root, size}`, where root is the RFC 9162
 *   Merkle tree hash over the canonical payloads, and `batch` proves that this
 *   payload is a leaf of it. Each message stays verifiable on its own; the
 *   signer pays one HSM signature per batch instead of one per message.
 * `keyId` is the fingerprint of the signer's public key, a hint for lookup; the
 * verifier always decides itself which key is acceptable.
 */
export interface SignedEnvelope<M extends Message = Message> {
  payload: M;
  signature: { alg: 'ES256'; keyId: string; value: string } | { alg: 'ES256-MERKLE'; keyId: string; value: string; batch: BatchProof };
}

/** `type` of the statement a batch signature covers; not a message type, so it can never be mistaken for one. */
export const SIGNED_BATCH_TYPE = 'keyhub.v1.signed_batch';

/** Largest batch the verifier accepts (and the signer produces). */
export const MAX_BATCH_SIZE = 65_536;

const hashB64 = z.base64().length(44);

const envelopeShape = z.strictObject({
  payload: z.looseObject({ type: z.string().max(64) }),
  signature: z.discriminatedUnion('alg', [
    z.strictObject({
      alg: z.literal('ES256'),
      keyId: z.string().max(128),
      value: z.base64().max(256),
    }),
    z.strictObject({
      alg: z.literal('ES256-MERKLE'),
      keyId: z.string().max(128),
      value: z.base64().max(256),
      batch: z.strictObject({
        size: z.int().min(2).max(MAX_BATCH_SIZE),
        index: z
          .int()
          .min(0)
          .max(MAX_BATCH_SIZE - 1),
        path: z.array(hashB64).max(MAX_AUDIT_PATH),
      }),
    }),
  ]),
});

/** Returned instead of thrown, so that a consumer can log and report without try/catch plumbing. */
export type Rejection = { ok: false; code: ErrorCode; detail: string; payload?: unknown };
export type Accepted<M extends Message> = { ok: true; envelope: SignedEnvelope<M> };

/** The bytes a signer signs. */
export function signingInput(payload: Message): Buffer {
  return canonicalBytes(payload);
}

/** SHA-256 of the canonical payload, what an HSM signs with CKM_ECDSA. */
export function signingDigest(payload: Message): Buffer {
  return createHash('sha256').update(signingInput(payload)).digest();
}

/** The bytes a batch signature covers: the statement naming the Merkle root and the tree size. */
export function batchStatement(root: Buffer, size: number): Buffer {
  return canonicalBytes({ type: SIGNED_BATCH_TYPE, root: root.toString('base64'), size });
}

/** The Merkle leaf of a payload in a signed batch. */
export function batchLeaf(payload: Message): Buffer {
  return leafHash(signingInput(payload));
}

export function encodeEnvelope(envelope: SignedEnvelope): Uint8Array {
  const bytes = Buffer.from(JSON.stringify(envelope), 'utf8');
  if (bytes.length > LIMITS.maxMessageBytes) throw new RangeError(`envelope of ${bytes.length} bytes exceeds ${LIMITS.maxMessageBytes}`);
  return bytes;
}

/**
 * Parses the envelope and validates the payload against its schema. Does NOT
 * check the signature: the caller first decides which key must have signed.
 */
export function decodeEnvelope(data: Uint8Array): Accepted<Message> | Rejection {
  if (data.length > LIMITS.maxMessageBytes) {
    return { ok: false, code: 'MESSAGE_TOO_LARGE', detail: `${data.length} bytes > ${LIMITS.maxMessageBytes}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    return { ok: false, code: 'MESSAGE_MALFORMED', detail: 'not JSON' };
  }
  const outer = envelopeShape.safeParse(json);
  if (!outer.success) return { ok: false, code: 'MESSAGE_MALFORMED', detail: describeIssues(outer.error) };
  const parsed = messageSchema.safeParse(outer.data.payload);
  if (!parsed.success) {
    const unknownType = parsed.error.issues.some((i) => i.code === 'invalid_union' && i.path.length === 1 && i.path[0] === 'type');
    return {
      ok: false,
      code: unknownType ? 'MESSAGE_UNKNOWN_TYPE' : 'MESSAGE_MALFORMED',
      detail: describeIssues(parsed.error),
      payload: outer.data.payload,
    };
  }
  return { ok: true, envelope: { payload: parsed.data, signature: outer.data.signature } };
}

/** Narrows a decoded envelope to one message type. */
export function isEnvelopeOf<T extends MessageType>(envelope: SignedEnvelope, type: T): envelope is SignedEnvelope<MessageOf<T>> {
  return envelope.payload.type === type;
}

/**
 * Batch statements already verified under a given key. A listener receives
 * many packages of one batch in a row; with this, it checks the ECDSA
 * signature once per batch and only the (cheap) audit path per package.
 * Bounded; the oldest entries go first.
 */
export class VerifiedBatches {
  private readonly seen = new Set<string>();

  constructor(private readonly max = 1024) {}

  has(key: string): boolean {
    return this.seen.has(key);
  }

  add(key: string): void {
    this.seen.add(key);
    if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value as string);
  }
}

/**
 * True when the envelope's signature verifies under `publicKey`: directly
 * over the payload (ES256), or over a batch statement whose Merkle root the
 * payload's audit path leads to (ES256-MERKLE).
 */
export function verifyEnvelope(envelope: SignedEnvelope, publicKey: KeyObject | Buffer, batches?: VerifiedBatches): boolean {
  const signature = Buffer.from(envelope.signature.value, 'base64');
  if (signature.length !== 64) return false;
  const der = (): Buffer => (Buffer.isBuffer(publicKey) ? publicKey : publicKey.export({ type: 'spki', format: 'der' }));
  const check = (data: Buffer): boolean => {
    try {
      const key = Buffer.isBuffer(publicKey) ? createPublicKey({ key: publicKey, format: 'der', type: 'spki' }) : publicKey;
      return verifySignature('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    } catch {
      return false;
    }
  };
  const sig = envelope.signature;
  if (sig.alg === 'ES256') return check(signingInput(envelope.payload));
  if (sig.alg !== 'ES256-MERKLE') return false;
  const path: Buffer[] = [];
  for (const p of sig.batch.path) {
    const h = Buffer.from(p, 'base64');
    if (h.length !== 32) return false;
    path.push(h);
  }
  const root = rootFromAuditPath(batchLeaf(envelope.payload), sig.batch.index, sig.batch.size, path);
  if (!root) return false;
  const cacheKey = batches ? `${der().toString('base64')}|${sig.batch.size}|${root.toString('base64')}` : '';
  if (batches?.has(cacheKey)) return true;
  const ok = check(batchStatement(root, sig.batch.size));
  if (ok) batches?.add(cacheKey);
  return ok;
}

function describeIssues(error: z.ZodError): string {
  // Paths and issue kinds only: values are never echoed, they may be key material.
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`)
    .join('; ');
}
