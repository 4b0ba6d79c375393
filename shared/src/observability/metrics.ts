import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

// Re-exported so the hub and the listener depend on one prom-client, the one shared declares.
export { Counter, Gauge, Histogram, Registry };

/**
 * Seconds. Spans a SoftHSM wrap with a cached handle (~0.1 ms) up to an RSA
 * key generation or a database query stuck behind a lock (seconds).
 */
export const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A registry of its own rather than prom-client's global one: tests, and a
 * process that opens more than one runtime, would otherwise collide on
 * metric names.
 */
export function createMetricsRegistry(): Registry {
  return new Registry();
}

/** prom-client's process and Node runtime metrics (CPU, memory, event loop lag, GC); for long-running processes only. */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
}

/** Times `work` into `histogram` with outcome ok|error added to `labels`, rethrowing what it throws. */
export async function timed<T>(histogram: Histogram<string>, labels: Record<string, string>, work: () => Promise<T>): Promise<T> {
  const end = histogram.startTimer(labels);
  try {
    const result = await work();
    end({ outcome: 'ok' });
    return result;
  } catch (err) {
    end({ outcome: 'error' });
    throw err;
  }
}
