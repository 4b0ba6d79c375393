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

/**
 * Work serialized per key: a call runs after every earlier call with the
 * same key has settled (a failure does not stop the next), calls with other
 * keys run freely. The targets use it per key version, so an import and a
 * lifecycle command of one version never race.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(work);
    this.tails.set(key, run);
    try {
      return await run;
    } finally {
      if (this.tails.get(key) === run) this.tails.delete(key);
    }
  }
}
