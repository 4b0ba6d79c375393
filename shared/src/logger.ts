import pino, { type Logger } from 'pino';
import { redactSecrets } from './redaction';

export type { Logger };

/**
 * Structured JSON logs on stderr (stdout belongs to CLI output). Field names
 * that could ever carry secrets are censored as a second line of defence; the
 * first is that code never logs them. As a third, every finished line passes
 * through `redactSecrets`: URLs with credentials, API tokens, NKEY seeds,
 * JWTs and creds-file blocks are replaced by their shape wherever they
 * appear (a message, an error's text, a bound field).
 */
export function createLogger(name: string, level: string = process.env.KEYHUB_LOG_LEVEL ?? 'info', destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false })): Logger {
  return pino(
    {
      name,
      level,
      base: { svc: name },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['pin', '*.pin', 'password', '*.password', 'seed', '*.seed', 'creds', '*.creds', 'token', '*.token', 'blob', '*.blob', '*.*.blob', 'key.value', 'material', '*.material'],
        censor: '[redacted]',
      },
      hooks: { streamWrite: redactSecrets },
    },
    destination,
  );
}

/**
 * Warnings about input from outside (unverified messages, stale heartbeats)
 * that anyone able to publish could trigger at will: at most `perWindow`
 * lines per reason and window, then one line saying how many were left out,
 * so that a flood costs a counter, not the disk. Callers log codes and ids,
 * never the payload.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { start: number; logged: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly perWindow = 10,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(reason: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    let w = this.windows.get(reason);
    if (!w || t - w.start >= this.windowMs) {
      if (w && w.suppressed > 0) this.logger.warn({ reason, suppressed: w.suppressed, windowMs: this.windowMs }, 'similar warnings suppressed');
      w = { start: t, logged: 0, suppressed: 0 };
      this.windows.set(reason, w);
      // Reasons are codes (a bounded set), but stay bounded even if a caller errs.
      if (this.windows.size > 256) this.windows.delete(this.windows.keys().next().value as string);
    }
    if (w.logged < this.perWindow) {
      w.logged++;
      this.logger.warn({ reason, ...fields }, msg);
    } else {
      w.suppressed++;
    }
  }
}
