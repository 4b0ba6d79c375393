import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stderr (stdout belongs to CLI output). Field names
 * that could ever carry secrets are censored as a second line of defence; the
 * first is that code never logs them.
 */
export function createLogger(name: string, level: string = process.env.KEYHUB_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      name,
      level,
      base: { svc: name },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['pin', '*.pin', 'password', '*.password', 'blob', '*.blob', '*.*.blob', 'key.value', 'material', '*.material'],
        censor: '[redacted]',
      },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}
