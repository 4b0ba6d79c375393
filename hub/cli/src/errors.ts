import { ERROR_CODES, EXIT, isErrorCode, type ErrorCode } from '@keyhub/protocol';

/** The client's error: a stable code from the protocol table, which also gives the exit code. */
export class CliError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, string | number | boolean>,
    readonly retryable = ERROR_CODES[code].retryable,
  ) {
    super(message);
    this.name = 'CliError';
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exitCode;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, retryable: this.retryable, ...(this.details ? { details: this.details } : {}) };
  }

  static fromBody(status: number, body: unknown): CliError {
    const e = (body as { error?: { code?: unknown; message?: unknown; details?: Record<string, string | number | boolean>; retryable?: unknown } } | undefined)?.error;
    if (e && isErrorCode(e.code)) return new CliError(e.code, typeof e.message === 'string' ? e.message : e.code, e.details, e.retryable === true);
    return new CliError(status >= 500 ? 'INTERNAL' : 'INPUT_INVALID', `the hub answered HTTP ${status}`);
  }
}

export { EXIT };
