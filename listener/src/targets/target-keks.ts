import { randomUUID } from 'node:crypto';
import {
  fingerprintsEqual,
  MAX_TARGET_SETTINGS,
  MESSAGE_TYPES,
  storableText,
  TARGET_KINDS,
  targetTransportFingerprint,
  verifyEnvelope,
  type ErrorCode,
  type SignedEnvelope,
  type TargetKekMessage,
  type TargetKekRequest,
  type TargetKekRotation,
  type TargetKind,
  type TargetUpdate,
} from '@keyhub/protocol';
import { aesKcv, KeyhubError, type Logger } from '@keyhub/shared';
import type { ListenerBus } from '../bus/listener-bus';
import type { TargetConfig } from '../config';
import type { ListenerKeys } from '../listener-keys';
import type { HubKeyStore } from '../state/hub-key';

/** A PKCS#11 target with a token of its own: its keys (KEKs, transport key) live in that token. */
export interface TargetToken {
  config: TargetConfig;
  keys: ListenerKeys;
  /** False while a token of its own cannot be opened (target-token.ts); absent means always there. */
  readonly available?: boolean;
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
    // The configured kind: the hub records it (a target it does not know yet joins the site as that kind) and refuses a contradiction.
    kind: token.config.kind,
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
  await confirmTargetKek(d, msg.target, msg.kek);
  d.logger.info({ target: msg.target, kekId: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv, result }, 'target KEK installed in its token and confirmed');
  return { kind: 'target_kek', target: msg.target, result };
}

/** The signed KCV of a target KEK now in its token, for the hub to activate it (after an install and after a rotation alike). */
async function confirmTargetKek(d: TargetKekDeps, target: string, kek: { id: string; version: number; kcv: string }): Promise<void> {
  const confirm = await d.keys.sign({
    type: MESSAGE_TYPES.targetKekConfirm,
    id: randomUUID(),
    listenerId: d.listenerId,
    issuedAt: d.now().toISOString(),
    target,
    kekId: kek.id,
    kekVersion: kek.version,
    kcv: kek.kcv,
  });
  await d.bus.publishUp('target_kek', confirm);
}

/**
 * A target KEK rotation from the hub (hub/src/operations/targets/rotate-target-kek.ts).
 * Rules, as for a root KEK rotation: it must verify under the pinned hub key
 * and be for this site and a PKCS#11 target with a token of its own;
 * anything else is dropped, unanswered, with nothing unwrapped. The new KEK
 * is unwrapped inside the TARGET token under the target's current KEK (a
 * session probe for the KCV first: KCV_MISMATCH stores nothing), installed
 * with the target KEK policy, and only then are the older KEKs the hub names
 * destroyed (never the one it travelled under, nor the new one: packages in
 * flight under the current KEK still import) and the KCV confirmed, signed.
 * A transit target (keystore, cloud) is refused: its KEK unwraps only
 * session objects, so it cannot carry a successor into the token.
 */
export async function handleTargetKekRotation(d: TargetKekDeps, envelope: SignedEnvelope<TargetKekRotation>): Promise<TargetKekResult> {
  const msg = envelope.payload;
  const hubKey = d.hubKeys.load();
  if (!hubKey || !verifyEnvelope(envelope, hubKey)) return { kind: 'dropped', code: hubKey ? 'SIGNATURE_INVALID' : 'NOT_ENROLLED' };
  if (msg.listenerId !== d.listenerId) return { kind: 'dropped', code: 'PACKAGE_WRONG_LISTENER' };
  const token = d.tokens.get(msg.target);
  if (!token) return { kind: 'dropped', code: 'TARGET_UNKNOWN' };
  if (token.config.kind !== 'pkcs11') return { kind: 'dropped', code: 'TARGET_KEK_NOT_ROTATABLE' };
  const keep = new Set([`${msg.wrappedUnder.id}:${msg.wrappedUnder.version}`, `${msg.kek.id}:${msg.kek.version}`]);
  const retire = msg.retire.filter((r) => !keep.has(`${r.id}:${r.version}`) && r.version < msg.wrappedUnder.version);
  let result: 'stored' | 'present';
  let destroyed: number;
  try {
    const next = { id: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv, blob: Buffer.from(msg.kek.blob, 'base64') };
    result = await token.keys.installSuccessorKek(msg.wrappedUnder, next, (h) => aesKcv(token.keys.hsm, h), 'rotated target KEK');
    destroyed = await token.keys.destroyKeks(retire);
  } catch (err) {
    const e = KeyhubError.from(err);
    if (e.code === 'HSM_ERROR') throw e;
    d.logger.warn({ code: e.code, target: msg.target, kekId: msg.kek.id, version: msg.kek.version }, 'target KEK rotation not installed');
    return { kind: 'dropped', code: e.code };
  }
  await confirmTargetKek(d, msg.target, msg.kek);
  d.logger.info({ target: msg.target, kekId: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv, result, destroyed }, 'rotated target KEK installed in its token and confirmed');
  return { kind: 'target_kek', target: msg.target, result };
}

/** Setting names never summarized: whatever may hold a secret, or say where one is (credentials, PINs, passwords, tokens). */
const SECRET_SETTING = /(pin|password|passphrase|secret|credential|private|accesskey|sessiontoken|(^|\.)token$|env$|file$)/i;

/**
 * The non-secret summary of a target's configuration that a target update
 * carries for the operator to read (module, token label, keystore path and
 * type, region, vault, key ring): scalar fields one level deep, secrets and
 * where they come from left out by name, at most MAX_TARGET_SETTINGS.
 */
export function targetSettingsSummary(config: object): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (k: string, v: unknown) => {
    if (Object.keys(out).length >= MAX_TARGET_SETTINGS || SECRET_SETTING.test(k) || !/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(k)) return;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = storableText(String(v), 256);
  };
  for (const [k, v] of Object.entries(config)) {
    if (k === 'name' || k === 'kind' || SECRET_SETTING.test(k)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) put(`${k}.${k2}`, v2);
    else put(k, v);
  }
  return out;
}

/**
 * `keyhub-listener target add|remove <name>`: a target added to or removed
 * from this site after enrollment, signed by the identity key and held at
 * the hub until an operator approves it; the hub sends nothing to an added
 * target before that. The settings summary is what the operator reads.
 */
export async function requestTargetUpdate(
  d: Pick<TargetKekDeps, 'listenerId' | 'keys' | 'bus' | 'now'>,
  u: { op: 'add' | 'remove'; target: string; kind: string; settings: Record<string, string> },
): Promise<TargetUpdate> {
  if (!(TARGET_KINDS as readonly string[]).includes(u.kind)) throw new KeyhubError('INPUT_INVALID', `unknown target kind ${u.kind} (${TARGET_KINDS.join(', ')})`);
  const update: TargetUpdate = {
    type: MESSAGE_TYPES.targetUpdate,
    id: randomUUID(),
    listenerId: d.listenerId,
    issuedAt: d.now().toISOString(),
    op: u.op,
    target: u.target,
    kind: u.kind as TargetKind,
    settings: u.settings,
  };
  await d.bus.publishUp('target_update', await d.keys.sign(update));
  return update;
}
