import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalBytes } from '../canonical';
import { formatFingerprint } from '../fingerprint';
import { LIMITS } from '../limits';
import { base64, freeText, kcv, listenerId, MESSAGE_TYPES, name, OAEP_HASHES, oaepWrappedKek, positiveInt, TARGET_KINDS, timestamp, uuid } from './common';

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
 * Later versions come by rotation (`target_kek_rotation`, below), wrapped
 * under the current target KEK and confirmed the same way.
 */
export const targetKekRequestSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.targetKekRequest),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  target: name,
  /** The target's configured kind: pkcs11 (a token of its own), or a keystore, cloud or TR-31 target (a transit KEK in the site's token). */
  kind: z.enum(TARGET_KINDS),
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

/** Most older KEKs one rotation tells the site to destroy (normally one: the version before the one it travels under). */
export const MAX_TARGET_KEK_RETIRE = 32;

/**
 * Target KEK rotation (hub to listener, on the listener's `target_kek`
 * subject), signed by the hub: the target's next KEK, made in the hub HSM
 * and wrapped (AES-KWP, RFC 5649) under the target's CURRENT KEK, which only
 * the target token holds; so it needs no transport key and no fingerprint
 * (the current KEK was approved that way). The listener unwraps it inside
 * the target token (a session probe for the KCV first), installs it with the
 * target KEK policy and answers with the signed `target_kek_confirm`; the hub
 * switches to it only on a matching KCV. `retire` names the older KEKs of
 * this target the site destroys once the new one is in: never the one it
 * travels under (packages still in flight under it import), so the site
 * keeps the current and the previous KEK, as for root KEKs.
 */
export const targetKekRotationSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.targetKekRotation),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  target: name,
  /** The target KEK the new one is wrapped under: the target's current one. */
  wrappedUnder: z.strictObject({ id: uuid, version: positiveInt }),
  kek: z.strictObject({
    id: uuid,
    version: positiveInt,
    kcv,
    mechanism: z.literal('AES-KWP'),
    blob: base64(LIMITS.maxBlobChars),
  }),
  retire: z.array(z.strictObject({ id: uuid, version: positiveInt })).max(MAX_TARGET_KEK_RETIRE),
});
export type TargetKekRotation = z.infer<typeof targetKekRotationSchema>;

/** Most settings a target update may summarize. */
export const MAX_TARGET_SETTINGS = 16;

/**
 * A target added to or removed from a listener after enrollment, for every
 * kind (issue 12), signed by the listener's identity key. The hub holds it
 * until an operator approves it (`keyhub listener target approve-update`);
 * until then nothing is sent to an added target, and a removed one keeps
 * what it has until the removal is approved. `settings` is a non-secret
 * summary the operator reads before approving (module path and token label,
 * keystore file and type, cloud region, vault or key ring): never a
 * password, PIN or credential.
 */
export const targetUpdateSchema = z.strictObject({
  type: z.literal(MESSAGE_TYPES.targetUpdate),
  id: uuid,
  listenerId,
  issuedAt: timestamp,
  op: z.enum(['add', 'remove']),
  target: name,
  kind: z.enum(TARGET_KINDS),
  settings: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/), freeText(256)).refine((s) => Object.keys(s).length <= MAX_TARGET_SETTINGS, `at most ${MAX_TARGET_SETTINGS} settings`),
});
export type TargetUpdate = z.infer<typeof targetUpdateSchema>;

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
