import { KeyhubError } from '@keyhub/shared';
import type { ErrorCode } from '@keyhub/protocol';

/** gRPC status names by number (google-gax's GoogleError) and by HTTP status (the REST fallback's GaxiosError). */
const BY_GRPC_CODE: Record<number, string> = {
  3: 'INVALID_ARGUMENT',
  4: 'DEADLINE_EXCEEDED',
  5: 'NOT_FOUND',
  6: 'ALREADY_EXISTS',
  7: 'PERMISSION_DENIED',
  8: 'RESOURCE_EXHAUSTED',
  9: 'FAILED_PRECONDITION',
  13: 'INTERNAL',
  14: 'UNAVAILABLE',
  16: 'UNAUTHENTICATED',
};
const BY_HTTP: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};
const RETRYABLE = new Set(['UNAVAILABLE', 'INTERNAL', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'UNKNOWN']);

interface GcpErrorShape {
  code?: number | string;
  status?: number;
  response?: { status?: number; data?: unknown };
}

function bodyStatus(data: unknown): string | undefined {
  let parsed = data;
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    try {
      parsed = JSON.parse(data.toString());
    } catch {
      return undefined;
    }
  }
  const status = (parsed as { error?: { status?: unknown } } | undefined)?.error?.status;
  return typeof status === 'string' && /^[A-Z_]{1,40}$/.test(status) ? status : undefined;
}

/** The canonical status name (NOT_FOUND, FAILED_PRECONDITION...) of whatever the library threw; UNKNOWN without an answer. */
export function gcpStatusName(err: unknown): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as GcpErrorShape;
  if (e.response) {
    // The body's canonical status, from the parsed body or, as this gaxios line leaves it, the error message.
    const named = [e.response.data, (err as Error).message].map(bodyStatus).find((s) => s !== undefined);
    if (named) return named;
    return BY_HTTP[e.response.status ?? 0] ?? (e.response.status && e.response.status >= 500 ? 'UNAVAILABLE' : 'INVALID_ARGUMENT');
  }
  if (typeof e.code === 'number') return BY_GRPC_CODE[e.code] ?? 'UNKNOWN';
  return 'UNKNOWN';
}

/**
 * A Google Cloud KMS failure as a KeyhubError by status name, per operation:
 * on ImportCryptoKeyVersion, FAILED_PRECONDITION is the import job no longer
 * ACTIVE (expired), INVALID_ARGUMENT an import job that does not belong to
 * this import. Material the service cannot unwrap or that does not fit
 * surfaces later, as the version's IMPORT_FAILED state.
 */
export function gcpError(err: unknown, operation: string): KeyhubError {
  if (err instanceof KeyhubError) return err;
  const status = gcpStatusName(err);
  let code: ErrorCode = 'CLOUD_REQUEST_REJECTED';
  if (RETRYABLE.has(status)) code = 'CLOUD_UNAVAILABLE';
  else if (operation === 'ImportCryptoKeyVersion' && status === 'FAILED_PRECONDITION') code = 'CLOUD_IMPORT_TOKEN_EXPIRED';
  else if (operation === 'ImportCryptoKeyVersion' && status === 'INVALID_ARGUMENT') code = 'CLOUD_IMPORT_TOKEN_INVALID';
  return new KeyhubError(code, `Google Cloud KMS ${operation} failed: ${status}`, { cause: err, details: { operation, gcpStatus: status } });
}
