import { randomUUID } from 'node:crypto';
import { decodeEnvelope, isEnvelopeOf, MESSAGE_TYPES, verifyEnvelope, type ErrorCode, type RootKekCeremony, type RootKekConfirm, type SignedEnvelope } from '@keyhub/protocol';
import { aesValueKcv, KeyhubError, parsePart, shamirCombine, wipe, xorCombine, type KeyPart, type Logger } from '@keyhub/shared';
import type { ListenerKeys } from '../listener-keys';
import type { CeremonyStore } from '../state/ceremony';
import type { HubKeyStore } from '../state/hub-key';

/*
 * Root KEK by key components (split knowledge, DESIGN.md "Root KEK
 * exchange", method 2), at the site. The hub's signed `root_kek_ceremony`
 * names the KCV of every part and of the key; the agent keeps it
 * (`receiveCeremony`), and `keyhub-listener root-kek enter` asks each
 * custodian for their part in a terminal (`enterParts`): each part's KCV is
 * checked before the next is asked for, nothing is stored until every one
 * is right, and the combined key's KCV is checked in the token before it
 * becomes the root KEK. SoftHSM2 has no CKM_XOR_BASE_AND_DATA, so the parts
 * are combined in memory and every buffer is wiped at once.
 */

export interface CeremonyDeps {
  listenerId: string;
  keys: ListenerKeys;
  hubKeys: HubKeyStore;
  store: CeremonyStore;
  logger: Logger;
}

export type CeremonyResult = { kind: 'root_kek_ceremony'; result: 'stored' | 'present' } | { kind: 'dropped'; code: ErrorCode };

/** Verifies a ceremony against the hub key it carries, pinned at install time, and that it is for this site. */
function verifyCeremony(deps: Pick<CeremonyDeps, 'listenerId' | 'hubKeys'>, envelope: SignedEnvelope<RootKekCeremony>): Buffer {
  const msg = envelope.payload;
  const hubKey = Buffer.from(msg.hubKey, 'base64');
  deps.hubKeys.assertPinned(hubKey);
  if (!verifyEnvelope(envelope, hubKey)) throw new KeyhubError('SIGNATURE_INVALID', 'root KEK ceremony is not signed by the hub key it carries');
  if (msg.listenerId !== deps.listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', `root KEK ceremony is for listener ${msg.listenerId}`);
  return hubKey;
}

/**
 * The agent's side: a verified ceremony for a site that is enrolling (its
 * transport key still exists) is kept for `root-kek enter`. One whose root
 * KEK is installed already is `present`; any other is dropped.
 */
export async function receiveCeremony(deps: CeremonyDeps, envelope: SignedEnvelope<RootKekCeremony>, bytes: Uint8Array): Promise<CeremonyResult> {
  const msg = envelope.payload;
  let hubKey: Buffer;
  try {
    hubKey = verifyCeremony(deps, envelope);
  } catch (err) {
    return { kind: 'dropped', code: KeyhubError.from(err).code };
  }
  if (await deps.keys.findKek(msg.kek.id, msg.kek.version)) return { kind: 'root_kek_ceremony', result: 'present' };
  if (!(await deps.keys.hasTransportKey())) return { kind: 'dropped', code: 'CEREMONY_UNEXPECTED' };
  deps.hubKeys.save(hubKey);
  deps.store.save(bytes);
  deps.logger.info(
    { ceremonyId: msg.ceremonyId, scheme: msg.scheme, parts: msg.parts.length, threshold: msg.threshold, kekKcv: msg.kek.kcv },
    'root KEK ceremony received: the custodians enter their parts with `keyhub-listener root-kek enter`',
  );
  return { kind: 'root_kek_ceremony', result: 'stored' };
}

/** The stored ceremony, verified again (the home is not trusted more than the wire). */
export function loadCeremony(deps: Pick<CeremonyDeps, 'listenerId' | 'hubKeys' | 'store'>): RootKekCeremony {
  const bytes = deps.store.load();
  if (!bytes) throw new KeyhubError('CEREMONY_NOT_FOUND', 'no root KEK ceremony has reached this site: is the agent running, and did the hub start one?');
  const decoded = decodeEnvelope(bytes);
  if (!decoded.ok || !isEnvelopeOf(decoded.envelope, MESSAGE_TYPES.rootKekCeremony)) throw new KeyhubError('MESSAGE_MALFORMED', 'the stored root KEK ceremony is not one');
  verifyCeremony(deps, decoded.envelope);
  return decoded.envelope.payload;
}

/** The terminal, as the ceremony sees it: the caller owns and wipes what `ask` returns. */
export interface CustodianConsole {
  say(text: string): void;
  /** One hidden line, as bytes. */
  ask(prompt: string): Promise<Buffer>;
}

const ATTEMPTS = 3;

/**
 * Asks for the parts until the threshold is met, each checked by its KCV
 * against the signed list; a wrong one is refused (nothing stored) and may
 * be typed again, up to three times per part. Returns the accepted parts;
 * the caller combines and wipes them.
 */
export async function collectParts(ceremony: RootKekCeremony, io: CustodianConsole): Promise<KeyPart[]> {
  const accepted: KeyPart[] = [];
  try {
    for (let n = 1; accepted.length < ceremony.threshold; n++) {
      const xorPart = ceremony.scheme === 'xor' ? ceremony.parts[accepted.length] : undefined;
      const who = xorPart
        ? `component ${xorPart.index} of ${ceremony.parts.length}, custodian ${xorPart.custodian}`
        : `share ${accepted.length + 1} of the ${ceremony.threshold} needed (any of: ${ceremony.parts
            .filter((p) => !accepted.some((a) => a.x === p.index))
            .map((p) => `${p.index} ${p.custodian}`)
            .join(', ')})`;
      let part: KeyPart | undefined;
      for (let attempt = 1; !part; attempt++) {
        const typed = await io.ask(`${who}: type it (input hidden), then Enter: `);
        let candidate: KeyPart | undefined;
        try {
          candidate = parsePart(ceremony.scheme, typed, xorPart?.index ?? 0);
          const expected = ceremony.parts.find((p) => p.index === candidate!.x);
          if (!expected) throw new KeyhubError('COMPONENT_INVALID', `there is no share ${candidate.x} in this ceremony`);
          if (accepted.some((a) => a.x === candidate!.x)) throw new KeyhubError('COMPONENT_INVALID', `share ${candidate.x} was entered already`);
          if (aesValueKcv(candidate.value) !== expected.kcv) {
            throw new KeyhubError('COMPONENT_KCV_MISMATCH', `refused: its KCV is not ${expected.kcv}, the one the hub signed for part ${expected.index}; nothing was stored`);
          }
          io.say(`part ${expected.index} accepted: KCV ${expected.kcv} (compare it with the one you were given)`);
          part = candidate;
          candidate = undefined;
        } catch (err) {
          const e = KeyhubError.from(err);
          if (e.code !== 'COMPONENT_INVALID' && e.code !== 'COMPONENT_KCV_MISMATCH') throw e;
          if (attempt >= ATTEMPTS) throw e;
          io.say(`${e.message} (${e.code}); ${ATTEMPTS - attempt} attempt(s) left`);
        } finally {
          wipe(typed, candidate?.value);
        }
      }
      accepted.push(part);
    }
    return accepted;
  } catch (err) {
    wipe(...accepted.map((p) => p.value));
    throw err;
  }
}

/** Combines the accepted parts; the caller wipes the result. */
export function combineParts(ceremony: RootKekCeremony, parts: KeyPart[]): Buffer {
  return ceremony.scheme === 'xor' ? xorCombine(parts.map((p) => p.value)) : shamirCombine(parts);
}

/** The signed confirmation the hub waits for: the same message as after a root KEK sent by transport key. */
export async function ceremonyConfirmation(keys: ListenerKeys, listenerId: string, ceremony: RootKekCeremony): Promise<SignedEnvelope<RootKekConfirm>> {
  return keys.sign({
    type: MESSAGE_TYPES.rootKekConfirm,
    id: randomUUID(),
    listenerId,
    issuedAt: new Date().toISOString(),
    kekId: ceremony.kek.id,
    kekVersion: ceremony.kek.version,
    kcv: ceremony.kek.kcv,
  });
}
