/**
 * Maps with at most `limit` calls in flight, keeping input order in the
 * result: enough to keep every session of an HSM pool busy without queueing
 * thousands of promises at once.
 *
 * After the first failure no further call starts, and the returned promise
 * rejects with that failure only once the calls already in flight have
 * settled: a caller's clean-up (destroying the session objects those calls
 * created, say) never races work still running.
 */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failure) {
      const i = next++;
      if (i >= items.length) return;
      try {
        results[i] = await fn(items[i], i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
  return results;
}
