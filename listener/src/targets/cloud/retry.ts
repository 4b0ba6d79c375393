import { setTimeout as sleep } from 'node:timers/promises';
import { KeyhubError } from '@keyhub/shared';

export interface RetryPolicy {
  /** Total tries, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 10_000 };

/**
 * Runs `call` again while it fails with a retryable KeyhubError (CLOUD_UNAVAILABLE),
 * waiting an exponentially growing delay, jittered in its upper half, between tries so
 * that many listeners coming back after an outage do not hit the cloud in step.
 * The SDKs' own retries are switched off so that this is the one policy.
 */
export async function withRetry<T>(call: () => Promise<T>, policy: RetryPolicy, onRetry?: (attempt: number, err: KeyhubError) => void): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof KeyhubError) || !err.retryable || attempt >= policy.attempts) throw err;
      onRetry?.(attempt, err);
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      await sleep(Math.floor(ceiling / 2 + (Math.random() * ceiling) / 2));
    }
  }
}
