import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalBytes } from '../canonical';
import { formatFingerprint } from '../fingerprint';
import { LIMITS } from '../limits';
import { base64, kcv, listenerId, MESSAGE_TYPES, name, OAEP_HASHES, oaepWrappedKek, positiveInt, timestamp, uuid } from './common';

/**
 * Per-target KEKs (issue 12): a PKCS#11 target other than the listener's own
 * token gets a KEK of its own, installed in THAT token, so the trusted
 * channel ends in the target HSM. The exchange mirrors enrollment:
 * 1. `target_kek_request` (listener to hub, signed by the identity key): a
 *    transport public key made in the target token (RSA, unwrap only);
 * 2. an operator approves with the fingerprint both sides show
 *    (`targetTransportFingerprint`); the hub makes the target KEK and sends
 *    `target_kek` (hub to listener, signed by the hub), wrapped to that
 *    transport key with RSA-OAEP;
 * 3. `target_kek_confirm` (listener to hub, signed): the KCV computed in the
 *    target token; the hub activates the KEK only when it matches.
 */
export const targetKekRequestSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.targetKekRequest),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  target: name,
  kind: z.literal('pkcs11'),
  /** DER SPKI of the RSA transport key made in the target token. */
  transportKey: base64(LIMITS.maxSpkiChars),
  oaepHash: z.enum(OAEP_HASHES),
});
export type TargetKekRequest = z.infer<typeof targetKekRequestSchema>;

export const targetKekSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.targetKek),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  target: name,
  /** The fingerprint the operator approved: names the transport key the KEK is wrapped to. */
  transportFingerprint: z.string().regex(/^[0-9a-f]{4}(-[0-9a-f]{4}){15}$/),
  kek: oaepWrappedKek,
});
export type TargetKekMessage = z.infer<typeof targetKekSchema>;

export const targetKekConfirmSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.targetKekConfirm),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  target: name,
  kekId: uuid,
  kekVersion: positiveInt,
  /** KCV computed in the target token. */
  kcv,
});
export type TargetKekConfirm = z.infer<typeof targetKekConfirmSchema>;

/**
 * What the operator compares before approving a target KEK: binds the
 * listener, the target name and the transport key (DER SPKI, base64) the
 * KEK will be wrapped to. Shown by `keyhub-listener target request` and by
 * `keyhub listener target list`.
 */
export function targetTransportFingerprint(listener: string, target: string, transportKeyB64: string): string {
  return formatFingerprint(
    createHash('sha256')
      .update(canonicalBytes({ kind: 'target_transport', listenerId: listener, target, transportKey: transportKeyB64 }))
      .digest(),
  );
}
