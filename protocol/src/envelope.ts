import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { canonicalBytes } from './canonical';
import { type ErrorCode } from './errors';
import { LIMITS } from './limits';
import { messageSchema, type Message, type MessageOf, type MessageType } from './messages';

/**
 * A signed message: the payload plus an ECDSA P-256 signature (raw r||s, as a
 * PKCS#11 token produces it) over the RFC 8785 canonical bytes of the payload.
 * `keyId` is the fingerprint of the signer's public key, a hint for lookup; the
 * verifier always decides itself which key is acceptable.
 */
export interface SignedEnvelope<M extends Message = Message> {
  payload: M;
  signature: { alg: 'ES256'; keyId: string; value: string };
}

const envelopeShape = z.strictObject({
  payload: z.looseObject({ type: z.string().max(64) }),
  signature: z.strictObject({
    alg: z.literal('ES256'),
    keyId: z.string().max(128),
    value: z.base64().max(256),
  }),
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

export function verifyEnvelope(envelope: SignedEnvelope, publicKey: KeyObject | Buffer): boolean {
  const key = Buffer.isBuffer(publicKey) ? createPublicKey({ key: publicKey, format: 'der', type: 'spki' }) : publicKey;
  const signature = Buffer.from(envelope.signature.value, 'base64');
  if (signature.length !== 64) return false;
  try {
    return verifySignature('sha256', signingInput(envelope.payload), { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

function describeIssues(error: z.ZodError): string {
  // Paths and issue kinds only: values are never echoed, they may be key material.
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`)
    .join('; ');
}
