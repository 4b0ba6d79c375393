import { randomUUID } from 'node:crypto';
import { MESSAGE_TYPES, verifyEnvelope, type ErrorCode, type RootKekRotation, type SignedEnvelope } from '@keyhub/protocol';
import { aesKcv, KeyhubError, type Logger } from '@keyhub/shared';
import type { ListenerBus } from '../bus/listener-bus';
import type { ListenerKeys } from '../listener-keys';
import type { HubKeyStore } from '../state/hub-key';

export interface RotationDeps {
  listenerId: string;
  keys: ListenerKeys;
  hubKeys: HubKeyStore;
  bus: Pick<ListenerBus, 'publishUp'>;
  logger: Logger;
  now: () => Date;
}

/**
 * A root KEK rotation from the hub. Rule, as for every message: input that
 * does not verify (under the hub key pinned at enrollment; a rotation
 * carries no key of its own) or is not for this site earns nothing: no
 * unwrap, no confirmation. A verified one is installed
 * (ListenerKeys.unwrapRotatedRootKek: KCV checked on a session probe first)
 * and confirmed with the signed `root_kek_confirm` enrollment uses; one that
 * cannot be installed here (its KEK is not held, its KCV differs) is dropped
 * with its code and unconfirmed, so the hub never switches to it.
 */
export async function handleRootKekRotation(
  d: RotationDeps,
  envelope: SignedEnvelope<RootKekRotation>,
): Promise<{ kind: 'root_kek'; result: 'stored' | 'present' } | { kind: 'dropped'; code: ErrorCode }> {
  const msg = envelope.payload;
  const hubKey = d.hubKeys.load();
  if (!hubKey || !verifyEnvelope(envelope, hubKey)) return { kind: 'dropped', code: hubKey ? 'SIGNATURE_INVALID' : 'NOT_ENROLLED' };
  if (msg.listenerId !== d.listenerId) return { kind: 'dropped', code: 'PACKAGE_WRONG_LISTENER' };
  let result: 'stored' | 'present';
  try {
    result = await d.keys.unwrapRotatedRootKek(msg.wrappedUnder, { id: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv, blob: Buffer.from(msg.kek.blob, 'base64') }, (h) =>
      aesKcv(d.keys.hsm, h),
    );
  } catch (err) {
    const e = KeyhubError.from(err);
    if (e.code === 'HSM_ERROR') throw e;
    d.logger.warn({ code: e.code, kekId: msg.kek.id, version: msg.kek.version }, 'root KEK rotation not installed');
    return { kind: 'dropped', code: e.code };
  }
  const confirm = await d.keys.sign({
    type: MESSAGE_TYPES.rootKekConfirm,
    id: randomUUID(),
    listenerId: d.listenerId,
    issuedAt: d.now().toISOString(),
    kekId: msg.kek.id,
    kekVersion: msg.kek.version,
    kcv: msg.kek.kcv,
  });
  await d.bus.publishUp('kek_confirm', confirm);
  d.logger.info({ kekId: msg.kek.id, version: msg.kek.version, kcv: msg.kek.kcv, result }, 'rotated root KEK installed and confirmed');
  return { kind: 'root_kek', result };
}
