import { KeyhubError } from '@keyhub/shared';

export interface Destination {
  listenerId: string;
  /** Omitted: every target of the listener. */
  target?: string;
}

/** A listener as far as its destinations go. */
export interface ListenerTargets {
  id: string;
  state: string;
  targets: Array<{ name: string }>;
}

/** Fewest packages per chunk: each chunk costs a transaction, a signature and the unwraps of its keys and KEKs. */
export const MIN_CHUNK = 100;
/** Chunks a large call is cut into at least, so that the first are published while the last are still being signed. */
export const MIN_CHUNKS = 8;

/**
 * Packages per chunk of a distribute call of `total` packages: at least
 * ~MIN_CHUNKS chunks when there is enough work, never more than
 * `issueBatch` per chunk, never fewer than MIN_CHUNK.
 */
export function chunkSize(total: number, issueBatch: number): number {
  return Math.min(issueBatch, Math.max(MIN_CHUNK, Math.ceil(total / MIN_CHUNKS)));
}

/** Cuts `items` into consecutive chunks of `size`; `from` is each chunk's offset in `items`. */
export function planChunks<T>(items: T[], size: number): Array<{ from: number; items: T[] }> {
  const chunks: Array<{ from: number; items: T[] }> = [];
  for (let i = 0; i < items.length; i += size) chunks.push({ from: i, items: items.slice(i, i + size) });
  return chunks;
}

/** Every target of every active listener (already filtered to active ones), in the order given. */
export function everyTarget(active: ListenerTargets[]): Array<{ listenerId: string; target: string }> {
  if (active.length === 0) throw new KeyhubError('LISTENER_NOT_FOUND', 'no active listeners');
  return active.flatMap((l) => l.targets.map((t) => ({ listenerId: l.id, target: t.name })));
}

/**
 * The (listener, target) pairs that `to` names, in order and without
 * repeats. Every listener must exist and be active, every named target must
 * be one of its own; a destination without a target means all of them.
 */
export function expandDestinations(to: Destination[], listeners: Map<string, ListenerTargets>): Array<{ listenerId: string; target: string }> {
  if (to.length === 0) throw new KeyhubError('INPUT_INVALID', 'no destination given');
  const pairs: Array<{ listenerId: string; target: string }> = [];
  const seen = new Set<string>();
  for (const d of to) {
    const l = listeners.get(d.listenerId);
    if (!l) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${d.listenerId}`);
    if (l.state !== 'active') throw new KeyhubError('NOT_ENROLLED', `listener ${d.listenerId} is ${l.state}, not active`);
    const targets = d.target === undefined ? l.targets.map((t) => t.name) : [d.target];
    for (const t of targets) {
      if (!l.targets.some((x) => x.name === t)) throw new KeyhubError('TARGET_UNKNOWN', `listener ${d.listenerId} has no target ${t}`);
      const k = `${d.listenerId}/${t}`;
      if (!seen.has(k)) pairs.push({ listenerId: d.listenerId, target: t });
      seen.add(k);
    }
  }
  return pairs;
}
