import * as pkcs11js from 'pkcs11js';
import { mapConcurrent } from '../../concurrency';
import type { KeyHandle, KeyPolicy, KwpTranslation, OaepHash, WrappedAesKey, WrappedKeyType } from '../hsm';
import { isPrivateKeyType } from './templates';
import { macInvalid } from './kwp-translator';
import { pairAt, planTranslation, TRANSIENT_KEK_POLICY, TRANSIENT_KEY_POLICY } from './kwp-translation-plan';

const P = pkcs11js;

/** CKZ_DATA_SPECIFIED: OAEP label source; pkcs11js does not export it. */
const CKZ_DATA_SPECIFIED = 1;

/** Largest wrapped blob accepted from C_WrapKey (AES-KWP of any key the hub holds fits with room to spare). */
export const WRAP_OUTPUT_MAX = 4096;

export function oaepMechanism(hash: OaepHash): pkcs11js.Mechanism {
  const params: pkcs11js.RsaOAEP = {
    type: P.CK_PARAMS_RSA_OAEP,
    hashAlg: hash === 'sha1' ? P.CKM_SHA_1 : P.CKM_SHA256,
    mgf: hash === 'sha1' ? P.CKG_MGF1_SHA1 : P.CKG_MGF1_SHA256,
    source: CKZ_DATA_SPECIFIED,
  };
  return { mechanism: P.CKM_RSA_PKCS_OAEP, parameter: params };
}

/** The single-key HSM calls that translating on the session pool is made of. */
export interface KwpOperations {
  concurrency: number;
  verifyHmacSha256(key: KeyHandle, data: Buffer, tag: Buffer): Promise<boolean>;
  unwrapKwp(kek: KeyHandle, blob: Buffer, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle>;
  unwrapKwpAs(kek: KeyHandle, blob: Buffer, keyType: WrappedKeyType, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle>;
  wrapKwp(kek: KeyHandle, key: KeyHandle): Promise<Buffer>;
  destroy(handle: KeyHandle): Promise<void>;
}

/**
 * translateKwp with async calls on the session pool, in the same order as the
 * worker thread (see kwp-translation-plan.ts), for modules kept off the
 * worker. Every object it unwraps is destroyed before it returns, also on failure.
 */
export async function translateOnPool(hsm: KwpOperations, t: KwpTranslation): Promise<Buffer[]> {
  const { streamKeks, groups } = planTranslation(t.keks.length, t.keys.length, t.pairs);
  const kekPolicy = TRANSIENT_KEK_POLICY;
  const keyPolicy = TRANSIENT_KEY_POLICY;
  const live = new Set<KeyHandle>();
  if (t.macKey) {
    // Every MAC before the first unwrap, as on the worker thread.
    const macKey = t.macKey;
    const all: Array<{ side: 'kek' | 'key'; index: number; k: WrappedAesKey }> = [
      ...t.keks.map((k, index) => ({ side: 'kek' as const, index, k })),
      ...t.keys.map((k, index) => ({ side: 'key' as const, index, k })),
    ];
    const verified = await mapConcurrent(all, hsm.concurrency, async ({ k }) => (k.mac ? hsm.verifyHmacSha256(macKey, k.mac.data, k.mac.tag) : false));
    const bad = verified.indexOf(false);
    if (bad >= 0) throw macInvalid(all[bad].side, all[bad].index);
  }
  const unwrap = async (k: WrappedAesKey, policy: KeyPolicy): Promise<KeyHandle> => {
    const type = k.keyType ?? 'aes';
    let h: KeyHandle;
    if (policy === kekPolicy) h = await hsm.unwrapKwp(t.kekUnwrappingKey ?? t.unwrappingKey, k.blob, k.lengthBytes, policy);
    else if (type === 'aes') h = await hsm.unwrapKwp(t.unwrappingKey, k.blob, k.lengthBytes, policy);
    else h = await hsm.unwrapKwpAs((isPrivateKeyType(type) ? t.privateUnwrappingKey : t.secretUnwrappingKey)!, k.blob, type, k.lengthBytes, policy);
    live.add(h);
    return h;
  };
  const destroy = async (h: KeyHandle): Promise<void> => {
    live.delete(h);
    await hsm.destroy(h);
  };
  try {
    const resident = await mapConcurrent(streamKeks ? t.keys : t.keks, hsm.concurrency, (k) => unwrap(k, streamKeks ? keyPolicy : kekPolicy));
    const out = new Array<Buffer>(t.pairs.length / 2);
    await mapConcurrent(groups, hsm.concurrency, async (group) => {
      const streamed = await unwrap((streamKeks ? t.keks : t.keys)[group.streamed], streamKeks ? kekPolicy : keyPolicy);
      for (const i of group.pairs) {
        const { kek, key } = pairAt(t.pairs, i);
        out[i] = streamKeks ? await hsm.wrapKwp(streamed, resident[key]) : await hsm.wrapKwp(resident[kek], streamed);
      }
      await destroy(streamed);
    });
    for (const h of resident) await destroy(h);
    return out;
  } finally {
    await mapConcurrent([...live], hsm.concurrency, (h) => hsm.destroy(h).catch(() => undefined));
  }
}
