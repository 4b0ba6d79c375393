import { KeyhubError } from '@keyhub/shared';
import type { ErrorCode } from '@keyhub/protocol';

/**
 * Inner error codes of a refused BYOK import. Azure documents the outer
 * codes (BadParameter, KeyNotFound, Forbidden, Throttled...) but not these;
 * they are what the local stand-in sends, and anything else falls back to
 * CLOUD_REQUEST_REJECTED.
 */
const BY_INNER_CODE: Record<string, ErrorCode> = {
  KekNotFound: 'CLOUD_IMPORT_TOKEN_INVALID',
  KekInvalid: 'CLOUD_IMPORT_TOKEN_INVALID',
  KekExpired: 'CLOUD_IMPORT_TOKEN_EXPIRED',
  InvalidKeyMaterial: 'CLOUD_MATERIAL_REJECTED',
  KeyTypeMismatch: 'CLOUD_MATERIAL_REJECTED',
  InvalidExpiry: 'CLOUD_EXPIRATION_MODEL_INVALID',
};

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'REQUEST_SEND_ERROR']);

interface RestErrorShape {
  name?: string;
  code?: string;
  statusCode?: number;
  /** The SDK's deserialized error body (`innerError`); raw bodies spell it `innererror`. */
  details?: { error?: { code?: string; innerError?: { code?: string }; innererror?: { code?: string } } };
}

/** An Azure SDK failure (RestError) as a KeyhubError, by status and error codes, never by message. */
export function azureError(err: unknown, operation: string): KeyhubError {
  if (err instanceof KeyhubError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as RestErrorShape;
  const status = e.statusCode;
  const inner = e.details?.error?.innerError?.code ?? e.details?.error?.innererror?.code;
  const outer = e.details?.error?.code ?? e.code;
  let code: ErrorCode = (inner && BY_INNER_CODE[inner]) || 'CLOUD_REQUEST_REJECTED';
  if (status === undefined || status >= 500 || status === 429 || (e.code && NETWORK_CODES.has(e.code))) code = 'CLOUD_UNAVAILABLE';
  const details = { operation, azureError: outer ?? 'unknown', ...(inner ? { azureInnerError: inner } : {}), ...(status ? { httpStatus: status } : {}) };
  return new KeyhubError(code, `Azure Key Vault ${operation} failed: ${outer ?? 'no answer'}`, { cause: err, details });
}
