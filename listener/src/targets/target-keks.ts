import { randomUUID } from 'node:crypto';
import { fingerprintsEqual, MESSAGE_TYPES, targetTransportFingerprint, verifyEnvelope, type ErrorCode, type SignedEnvelope, type TargetKekMessage, type TargetKekRequest } from '@keyhub/protocol';
import { aesKcv, KeyhubError, type Logger } from '@keyhub/shared';
import type { ListenerBus } from '../bus/listener-bus';
import type { TargetConfig } from '../config';
import type { ListenerKeys } from '../listener-keys';
import type { HubKeyStore } from '../state/hub-key';

/** A PKCS#11 target with a token of its own: its keys (KEKs, transport key) live in that token. */
export interface TargetToken {
  config: TargetConfig;
  keys: ListenerKeys;
}

export interface TargetKekDeps {
  listenerId: string;
  /** The site's own keys: its identity key signs requests and confirmations. */
  keys: ListenerKeys;
  hubKeys: HubKeyStore;
  /** Targets with a token of their own, by name. */
  tokens: Map<string, TargetToken>;
  bus: Pick<ListenerBus, 'publishUp'>;
  logger: Logger;
  now: () => Date;
}

export type TargetKekResult = { kind: 'target_kek'; target: string; result: 'stored' | 'present' } | { kind: 'dropped'; code: ErrorCode };

/**
 * `keyhub-listener target request <name>`: a transport key pair is made in
 * the TARGET token and its public half sent to the hub, signed by the site's
 * identity key. Both sides show the same fingerprint; nothing happens until
 * an operator approves it at the hub.
 */
export async function requestTargetKek(d: Pick<TargetKekDeps, 'listenerId' | 'keys' | 'tokens' | 'bus' | 'now'>, target: string): Promise<{ fingerprint: string; createdKey: boolean }> {
  const token = d.tokens.get(target);
  if (!token) throw new KeyhubError('TARGET_UNKNOWN', `no PKCS#11 target named ${target} with a token of its own (hsm) in the configuration`);
  const { spki, created } = await token.keys.ensureTargetTransportKey(token.config.transportKeyBits);
  const request: TargetKekRequest = {
    type: MESSAGE_TYPES.targetKekRequest,
    id: randomUUID(),
    listenerId: d.listenerId,
    issuedAt: d.now().toISOString(),
    target,
    kind: 'pkcs11',
    transportKey: spki.toString('base64'),
    oaepHash: token.config.oaepHash,
  };
  await d.bus.publishUp('target_kek', await d.keys.sign(request));
  return { fingerprint: targetTransportFingerprint(d.listenerId, target, request.transportKey), createdKey: created };
}

/**
 * A target KEK from the hub. Rules, as for a root KEK: it must verify under
 * the hub key pinned at enrollment, be for this site and for a target with a
 * token of its own, and name the transport key that token holds (the
 * fingerprint the operator approved); anything else is dropped, unanswered.
 * The KEK is installed only if its KCV, computed in the target token,
 * matches (ListenerKeys.installTargetKek), and only then confirmed, signed.
 */
export async function handleTargetKek(d: TargetKekDeps, envelope: SignedEnvelope<TargetKekMessage>): Promise<TargetKekResult> {
  const msg = envelope.payload;
  const hubKey = d.hubKeys.load();
  if (!hubKey || !verifyEnvelope(envelope, hubKey)) return { kind: 'dropped', code: hubKey ? 'SIGNATURE_INVALID' : 'NOT_ENROLLED' };
  if (msg.listenerId !== d.listenerId) return { kind: 'dropped', code: 'PACKAGE_WRONG_LISTENER' };
  const token = d.tokens.get(msg.target);
  if (!token) return { kind: 'dropped', code: 'TARGET_UNKNOWN' };
  let result: 'stored' | 'present';
  try {
    if (!(await token.keys.findKek(msg.kek.id, msg.kek.version))) {
      const spki = await token.keys.targetTransportSpki();
      if (!spki || !fingerprintsEqual(msg.transportFingerprint, targetTransportFingerprint(d.listenerId, msg.target, spki.toString('base64')))) {
        throw new KeyhubError('FINGERPRINT_MISMATCH', `the target KEK is wrapped to a transport key token "${token.keys.hsm.tokenLabel}" does not hold`);
      }
    }
    const blob = Buffer.from(msg.kek.blob, 'base64');
    result = await token.keys.installTargetKek(blob, msg.kek.oaepHash, msg.kek.id, msg.kek.version, (h) => aesKcv(token.keys.hsm, h), msg.kek.kcv);
  } catch (err) {
    const e = KeyhubError.from(err);
    if (e.code === 'HSM_ERROR') throw e;
    d.logger.warn({ code: e.code, target: msg.target, kekId: msg.kek.id, version: msg.kek.version }, 'target KEK not installed');
    return { kind: 'dropped', code: e.code };
  }
  const confirm = await d.keys.sign({
    type: MESSAGE_TYPES.targetKekConfirm,
    id: randomUUID(),
    listenerId: d.listenerId,
    issuedAt: d.now().toISOString(),
    target: msg.target,
    kekId: msg.kek.id,
    kekVersion: msg.kek.version,
    kcv: msg.kek.kcv,
  });
  await d.bus.publishUp('target_kek', confirm);
  d.logger.info({ target: msg.target, kekId: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv, result }, 'target KEK installed in its token and confirmed');
  return { kind: 'target_kek', target: msg.target, result };
}
