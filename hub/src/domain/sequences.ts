/** What sequence numbering needs of a package request: the listener it goes to. */
export interface ForListener {
  distribution: { listenerId: string };
}

/** Counts requests per listener: the size of the block of sequence numbers each listener needs. */
export function countByListener(requests: ForListener[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of requests) counts.set(r.distribution.listenerId, (counts.get(r.distribution.listenerId) ?? 0) + 1);
  return counts;
}

/**
 * The sequence number of each request, in request order, from the blocks
 * allocated per listener (`before`: the number before each listener's block).
 * Each listener's requests get consecutive numbers in the order they come.
 */
export function assignSequences(requests: ForListener[], before: Map<string, number>): number[] {
  const next = new Map(before);
  return requests.map((r) => {
    const n = next.get(r.distribution.listenerId)! + 1;
    next.set(r.distribution.listenerId, n);
    return n;
  });
}
