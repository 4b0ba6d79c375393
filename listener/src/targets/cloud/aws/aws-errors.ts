import { KeyhubError } from '@keyhub/shared';
import type { ErrorCode } from '@keyhub/protocol';

const BY_NAME: Record<string, ErrorCode> = {
  ExpiredImportTokenException: 'CLOUD_IMPORT_TOKEN_EXPIRED',
  InvalidImportTokenException: 'CLOUD_IMPORT_TOKEN_INVALID',
  IncorrectKeyMaterialException: 'CLOUD_MATERIAL_REJECTED',
  InvalidCiphertextException: 'CLOUD_MATERIAL_REJECTED',
  KMSInternalException: 'CLOUD_UNAVAILABLE',
  DependencyTimeoutException: 'CLOUD_UNAVAILABLE',
  ThrottlingException: 'CLOUD_UNAVAILABLE',
  LimitExceededException: 'CLOUD_UNAVAILABLE',
};

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND']);

interface AwsErrorShape {
  name?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/**
 * An AWS SDK failure as a KeyhubError, by the exception's name (the SDK's
 * stable identifier), never its message. On ImportKeyMaterial the only
 * parameters a ValidationException can be about, beyond token and material
 * (which have exceptions of their own), are ExpirationModel and ValidTo.
 */
export function awsError(err: unknown, operation: string): KeyhubError {
  if (err instanceof KeyhubError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as AwsErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const details = { operation, awsError: e.name ?? 'unknown', ...(status ? { httpStatus: status } : {}), ...(e.$metadata?.requestId ? { requestId: e.$metadata.requestId } : {}) };
  let code: ErrorCode = e.name ? (BY_NAME[e.name] ?? 'CLOUD_REQUEST_REJECTED') : 'CLOUD_UNAVAILABLE';
  if (e.name === 'ValidationException' && operation === 'ImportKeyMaterial') code = 'CLOUD_EXPIRATION_MODEL_INVALID';
  if (e.$fault === 'server' || (status !== undefined && status >= 500) || e.name === 'TimeoutError' || (e.code && NETWORK_CODES.has(e.code))) code = 'CLOUD_UNAVAILABLE';
  return new KeyhubError(code, `AWS KMS ${operation} failed: ${e.name ?? 'no answer'}`, { cause: err, details });
}
