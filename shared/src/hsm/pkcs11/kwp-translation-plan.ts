/**
 * The order in which `translateKwp` works through a batch, shared by the
 * worker thread and the pool fallback. SoftHSM2 slows down with every live
 * session object (measured: 1,000 KEKs unwrapped up front ~140 µs per pair,
 * 125 at a time ~77 µs, one at a time ~68 µs), so the smaller side (KEKs or
 * keys) is unwrapped for the whole call ("resident") and each entry of the
 * larger side is unwrapped, used for all its pairs and destroyed
 * ("streamed").
 */
/**
 * The session objects a translation unwraps (key-classes.ts): not
 * CKA_PRIVATE (the hub's sessions are always logged in; SoftHSM2 then spares
 * encrypting their values in its memory on every use), sensitive, a KEK able
 * only to wrap, a key only to be wrapped, both AES-KWP only. The master keys'
 * unwrap templates accept nothing else.
 */
export { TRANSIENT_KEK_POLICY, TRANSIENT_KEY_POLICY } from '../key-classes';

export interface TranslationPlan {
  /** True: KEKs are streamed and keys resident; false: the other way round. */
  streamKeks: boolean;
  /** Each streamed entry used by some pair, in first-use order, with the pairs that use it. */
  groups: Array<{ streamed: number; pairs: number[] }>;
}

export function planTranslation(keks: number, keys: number, pairs: Uint32Array): TranslationPlan {
  const streamKeks = keks >= keys;
  const byStreamed = new Map<number, number[]>();
  for (let i = 0; i < pairs.length / 2; i++) {
    const s = pairs[2 * i + (streamKeks ? 0 : 1)];
    const list = byStreamed.get(s);
    if (list) list.push(i);
    else byStreamed.set(s, [i]);
  }
  return { streamKeks, groups: [...byStreamed].map(([streamed, list]) => ({ streamed, pairs: list })) };
}

/** The KEK and the key index of pair i. */
export function pairAt(pairs: Uint32Array, i: number): { kek: number; key: number } {
  return { kek: pairs[2 * i], key: pairs[2 * i + 1] };
}
