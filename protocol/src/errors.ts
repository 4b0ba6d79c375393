/**
 * The table of stable error codes. Callers match on `code`, never on message
 * text. `retryable` says whether the same request may succeed later without
 * anyone changing anything (a server came back, a lock was released).
 * `exitCode` is what the CLIs exit with, grouped so scripts can branch on it.
 */
export interface ErrorCodeInfo {
  readonly retryable: boolean;
  readonly exitCode: number;
  readonly description: string;
}

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  refused: 4,
  integrity: 5,
  unavailable: 6,
  hsm: 7,
  timeout: 8,
} as const;

const def = (retryable: boolean, exitCode: number, description: string): ErrorCodeInfo => ({ retryable, exitCode, description });

export const ERROR_CODES = {
  // Messages on the wire
  MESSAGE_MALFORMED: def(false, EXIT.integrity, 'message is not valid JSON or does not match its schema'),
  MESSAGE_TOO_LARGE: def(false, EXIT.integrity, 'message exceeds the size limit'),
  MESSAGE_UNKNOWN_TYPE: def(false, EXIT.integrity, 'message type is not known to this version'),
  SIGNATURE_INVALID: def(false, EXIT.integrity, 'signature does not verify under the expected key'),
  SIGNER_UNKNOWN: def(false, EXIT.integrity, 'message is signed by a key that is not trusted here'),
  // Key packages at the listener
  PACKAGE_REPLAYED: def(false, EXIT.refused, 'package sequence number was already used'),
  PACKAGE_EXPIRED: def(false, EXIT.refused, 'package expiry time has passed'),
  PACKAGE_WRONG_LISTENER: def(false, EXIT.refused, 'package is addressed to another listener'),
  TARGET_UNKNOWN: def(false, EXIT.notFound, 'target is not configured at this listener'),
  KEK_UNKNOWN: def(false, EXIT.notFound, 'the key-encryption key named by the package is not present'),
  UNWRAP_FAILED: def(false, EXIT.integrity, 'wrapped key failed its integrity check or the KEK is wrong'),
  KCV_MISMATCH: def(false, EXIT.integrity, 'key check value computed at the target differs from the expected one'),
  KEY_LENGTH_INVALID: def(false, EXIT.integrity, 'key length does not match its algorithm'),
  TARGET_IMPORT_FAILED: def(true, EXIT.failure, 'the target refused or failed the import'),
  // Enrollment and root KEK
  FINGERPRINT_MISMATCH: def(false, EXIT.refused, 'fingerprint given by the operator does not match the enrollment request'),
  HUB_KEY_NOT_PINNED: def(false, EXIT.integrity, 'hub public key does not match the fingerprint pinned at install time'),
  NOT_ENROLLED: def(false, EXIT.refused, 'listener has no active root KEK yet'),
  // Domain
  INPUT_INVALID: def(false, EXIT.usage, 'request is invalid'),
  KEY_NOT_FOUND: def(false, EXIT.notFound, 'no such key'),
  KEY_EXISTS: def(false, EXIT.refused, 'a key with that name already exists'),
  LISTENER_NOT_FOUND: def(false, EXIT.notFound, 'no such listener'),
  LISTENER_STATE_INVALID: def(false, EXIT.refused, 'listener is not in a state that allows this action'),
  DISTRIBUTION_NOT_FOUND: def(false, EXIT.notFound, 'no such distribution'),
  AUDIT_CHAIN_BROKEN: def(false, EXIT.integrity, 'audit hash chain or checkpoint does not verify'),
  NOT_INITIALIZED: def(false, EXIT.refused, 'hub is not initialized: run `keyhub init`'),
  // Infrastructure
  HSM_MODULE_LOAD_FAILED: def(false, EXIT.hsm, 'PKCS#11 module could not be loaded'),
  HSM_TOKEN_NOT_FOUND: def(false, EXIT.hsm, 'no token with the configured label'),
  HSM_PIN_INCORRECT: def(false, EXIT.hsm, 'token refused the PIN'),
  HSM_PIN_MISSING: def(false, EXIT.hsm, 'no PIN configured for the token'),
  HSM_OBJECT_NOT_FOUND: def(false, EXIT.hsm, 'expected object is not in the token'),
  HSM_ERROR: def(false, EXIT.hsm, 'PKCS#11 call failed'),
  DB_UNAVAILABLE: def(true, EXIT.unavailable, 'database is unreachable'),
  BUS_UNAVAILABLE: def(true, EXIT.unavailable, 'NATS is unreachable'),
  CONFIG_INVALID: def(false, EXIT.usage, 'configuration is missing or invalid'),
  TIMEOUT: def(true, EXIT.timeout, 'operation did not finish in time'),
  INTERNAL: def(false, EXIT.failure, 'internal error'),
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}
