import type { Readiness } from './http-server';

/** A check resolves to "ok" or to a short reason (a code, a state) that it is not. */
export type ReadinessCheck = () => Promise<string>;

/**
 * Runs every check at once, each under its own time limit, so one dependency
 * that hangs shows up by name instead of hiding the answers of the others.
 */
export async function runReadinessChecks(checks: Record<string, ReadinessCheck>, timeoutMs = 3_000): Promise<Readiness> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]): Promise<[string, string]> => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
      });
      try {
        return [name, await Promise.race([check().catch((err: unknown) => failureReason(err)), late])];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ready: entries.every(([, v]) => v === 'ok'), checks: Object.fromEntries(entries) };
}

/**
 * A code where the error has one (KeyhubError, CKR_*, errno, SQLSTATE), so a
 * probe answer never carries free text from a driver.
 */
export function failureReason(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { ckr?: unknown; code?: unknown };
    if (typeof e.ckr === 'string' && e.ckr) return e.ckr;
    if (typeof e.code === 'string' && e.code) return e.code;
  }
  return 'error';
}
