import { ERROR_CODES, isErrorCode, type ErrorCode } from '@keyhub/protocol';

export interface KeyhubErrorOptions {
  cause?: unknown;
  /** Overrides the table's default when the situation says otherwise. */
  retryable?: boolean;
  /** PKCS#11 return value name (CKR_*), kept verbatim for operators and support. */
  ckr?: string;
  /** Identifiers only (ids, names, counts): never key material or secrets. */
  details?: Record<string, string | number | boolean>;
}

/** The one error type. Code comes from the protocol table; match on it, never on message text. */
export class KeyhubError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly ckr?: string;
  readonly details?: Record<string, string | number | boolean>;

  constructor(code: ErrorCode, message: string, options: KeyhubErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeyhubError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
    this.ckr = options.ckr;
    this.details = options.details;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exitCode;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, retryable: this.retryable, ...(this.ckr ? { ckr: this.ckr } : {}), ...(this.details ? { details: this.details } : {}) };
  }

  static is(err: unknown, code?: ErrorCode): err is KeyhubError {
    return err instanceof KeyhubError && (code === undefined || err.code === code);
  }

  /** Wraps anything thrown into a KeyhubError, keeping the original as `cause`. */
  static from(err: unknown, fallback: ErrorCode = 'INTERNAL', message?: string): KeyhubError {
    if (err instanceof KeyhubError) return err;
    const code = typeof err === 'object' && err !== null && 'code' in err && isErrorCode((err as { code: unknown }).code) ? (err as { code: ErrorCode }).code : fallback;
    return new KeyhubError(code, message ?? (err instanceof Error ? err.message : String(err)), { cause: err });
  }
}
