/**
 * The table of stable error codes. Callers match on `code`, never on message
 * text. `retryable` says whether the same request may succeed later without
 * anyone changing anything (a server came back, a lock was released).
 * `exitCode` is what the CLIs exit with, grouped so scripts can branch on it;
 * `httpStatus` is what the hub's API answers with.
 */
export interface ErrorCodeInfo {
  readonly retryable: boolean;
  readonly exitCode: number;
  readonly httpStatus: number;
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
  /** No credential, or one the hub does not accept (malformed, unknown, expired, revoked). */
  auth: 9,
  /** A valid identity without the permission for this action. */
  forbidden: 10,
} as const;

const def = (retryable: boolean, exitCode: number, description: string, httpStatus = 400): ErrorCodeInfo => ({ retryable, exitCode, httpStatus, description });

export const ERROR_CODES = {
  // Messages on the wire
  MESSAGE_MALFORMED: def(false, EXIT.integrity, 'message is not valid JSON or does not match its schema'),
  MESSAGE_TOO_LARGE: def(false, EXIT.integrity, 'message exceeds the size limit', 413),
  MESSAGE_UNKNOWN_TYPE: def(false, EXIT.integrity, 'message type is not known to this version'),
  SIGNATURE_INVALID: def(false, EXIT.integrity, 'signature does not verify under the expected key'),
  SIGNER_UNKNOWN: def(false, EXIT.integrity, 'message is signed by a key that is not trusted here'),
  // Key packages at the listener
  PACKAGE_REPLAYED: def(false, EXIT.refused, 'package sequence number was already used', 409),
  PACKAGE_EXPIRED: def(false, EXIT.refused, 'package expiry time has passed', 409),
  PACKAGE_WRONG_LISTENER: def(false, EXIT.refused, 'package is addressed to another listener', 409),
  TARGET_UNKNOWN: def(false, EXIT.notFound, 'target is not configured at this listener', 404),
  KEK_UNKNOWN: def(false, EXIT.notFound, 'the key-encryption key named by the package is not present', 404),
  UNWRAP_FAILED: def(false, EXIT.integrity, 'wrapped key failed its integrity check or the KEK is wrong'),
  KCV_MISMATCH: def(false, EXIT.integrity, 'key check value computed at the target differs from the expected one'),
  KEY_LENGTH_INVALID: def(false, EXIT.integrity, 'key length does not match its algorithm'),
  KEY_PAIR_MISMATCH: def(false, EXIT.integrity, "the private key at the target does not match the package's public key (its signature over a challenge does not verify)"),
  TARGET_IMPORT_FAILED: def(true, EXIT.failure, 'the target refused or failed the import', 502),
  TARGET_OBJECT_MISMATCH: def(false, EXIT.integrity, "an object with the key's id exists at the target but its KCV or attributes differ from the package", 409),
  // Java keystore targets (PKCS#12, JCEKS)
  KEYSTORE_PASSWORD_INVALID: def(false, EXIT.usage, 'keystore password is empty or not printable ASCII (all Java 17 accepts)', 500),
  KEYSTORE_WRONG_PASSWORD: def(false, EXIT.refused, 'the keystore integrity check (PKCS#12 MAC, JCEKS keyed hash) fails with the configured password: the file is left as it is', 409),
  KEYSTORE_NOT_WRITABLE: def(true, EXIT.unavailable, 'the keystore file or its directory cannot be written (permissions, read-only or full file system)', 503),
  KEYSTORE_CORRUPT: def(false, EXIT.integrity, 'the keystore file is not a PKCS#12 or JCEKS keystore this writer can read: the file is left as it is', 409),
  KEYSTORE_ALIAS_INVALID: def(false, EXIT.usage, 'keystore alias is not lower-case printable ASCII of 1..128 characters, or is used twice in one write'),
  // Cloud KMS targets (BYOK import)
  CLOUD_IMPORT_TOKEN_EXPIRED: def(false, EXIT.refused, "the cloud's import token / wrapping key expired before the import (a fresh one expired too)", 409),
  CLOUD_IMPORT_TOKEN_INVALID: def(false, EXIT.refused, 'the cloud refused the import token or wrapping key as not matching this key or import', 409),
  CLOUD_MATERIAL_REJECTED: def(false, EXIT.refused, 'the cloud refused the key material (unwrap failed, key spec or algorithm mismatch, or different from material imported before)', 409),
  CLOUD_EXPIRATION_MODEL_INVALID: def(false, EXIT.usage, 'the cloud refused the expiration model or validity of the imported material', 409),
  CLOUD_WRAP_UNSUPPORTED: def(false, EXIT.usage, 'the cloud or wrapping cannot carry this key (no key type for it, too long for RSA-OAEP, a hash the HSM lacks)'),
  CLOUD_CLEAR_IMPORT_REFUSED: def(false, EXIT.refused, "a JWK import would send the key in clear (inside TLS), and the key's policy does not allow that", 409),
  CLOUD_REQUEST_REJECTED: def(false, EXIT.refused, 'the cloud refused the request (credentials, permissions, unknown or disabled key, invalid parameter)', 502),
  CLOUD_UNAVAILABLE: def(true, EXIT.unavailable, 'the cloud KMS did not answer or answered with a server error, also after retries with back-off', 503),
  // Receipts and heartbeats at the hub
  RECEIPT_PACKAGE_MISMATCH: def(false, EXIT.integrity, 'receipt names a package hash that is not the hash of the package it claims to answer', 409),
  // TR-31 / ANSI X9.143 key blocks (protocol/src/key-blocks)
  TR31_MALFORMED: def(false, EXIT.integrity, 'TR-31 key block is malformed: length, characters, a header field, an optional block or the decrypted key length'),
  TR31_MAC_INVALID: def(false, EXIT.integrity, 'TR-31 key block MAC does not verify: the block was altered or the KBPK is not the one it was made under'),
  TR31_UNSUPPORTED: def(false, EXIT.refused, 'TR-31 key block version or key type is not supported here (versions B and D are)'),
  TR31_KBPK_INVALID: def(false, EXIT.usage, 'the key block protection key does not fit the key block version (D: AES-128/192/256, B: two- or three-key TDES)'),
  TR31_USAGE_UNMAPPABLE: def(false, EXIT.usage, "the key's algorithm, usages or requested TR-31 key usage have no consistent TR-31 key usage and mode of use"),
  // TR-31 payment-HSM targets (listener/src/targets/tr31-target.ts)
  TARGET_UNAVAILABLE: def(true, EXIT.unavailable, 'the target (a payment HSM) did not answer, or answered that it is busy or failing: the delivery is retried', 503),
  TR31_TRANSPORT_KEY_MISMATCH: def(false, EXIT.integrity, "the payment HSM's transport key is not the one pinned in the target's configuration: no KBPK is sent to it", 409),
  TR31_KBPK_KCV_MISMATCH: def(false, EXIT.integrity, 'the KCV the payment HSM computed for the KBPK it received differs from the KCV in the listener token: the KBPK is discarded', 409),
  // Lifecycle commands (suspend, resume, deactivate, compromise, destroy) at the listener and the hub
  KEY_VERSION_REVOKED: def(false, EXIT.refused, 'the listener was told this key version is compromised or destroyed: it imports nothing of it again', 409),
  COMMAND_REPLAYED: def(false, EXIT.refused, 'a command with this id was already carried out here (answered with the receipt it earned, not run again)', 409),
  COMMAND_EXPIRED: def(false, EXIT.refused, 'command expiry time has passed', 409),
  COMMAND_SUPERSEDED: def(false, EXIT.refused, 'a newer command for this key version and target was already carried out', 409),
  COMMAND_NOT_APPLICABLE: def(false, EXIT.refused, 'the target cannot carry out this command for this key version', 409),
  COMMAND_RECEIPT_MISMATCH: def(false, EXIT.integrity, 'command receipt names a command hash that is not the hash of the command it claims to answer', 409),
  HEARTBEAT_STALE: def(false, EXIT.refused, 'heartbeat is outside the freshness window or its sequence is not newer than the last one seen', 409),
  // Enrollment and root KEK
  FINGERPRINT_MISMATCH: def(false, EXIT.refused, 'fingerprint given by the operator does not match the enrollment request', 409),
  COMPONENT_INVALID: def(false, EXIT.usage, 'a root KEK component or share is malformed (length, hex digits, share index)', 400),
  COMPONENT_KCV_MISMATCH: def(false, EXIT.integrity, 'the KCV of an entered root KEK component differs from the one the hub signed: nothing was stored', 409),
  COMPONENT_NOT_YOURS: def(false, EXIT.forbidden, 'this root KEK component belongs to another custodian', 403),
  COMPONENT_ALREADY_RELEASED: def(false, EXIT.refused, 'this root KEK component was released already; each is released once', 409),
  CEREMONY_UNEXPECTED: def(false, EXIT.refused, 'a root KEK ceremony reached a site that is not enrolling (its transport key is gone)', 409),
  TERMINAL_REQUIRED: def(false, EXIT.usage, 'this command asks for secrets with hidden input and must run in a terminal', 400),
  CEREMONY_NOT_FOUND: def(false, EXIT.notFound, 'no root KEK ceremony for this listener (none started, or it is over)', 404),
  CUSTODIANS_INVALID: def(false, EXIT.usage, 'custodians must be distinct active approvers, as many as the parts, and not the requester', 400),
  HUB_KEY_NOT_PINNED: def(false, EXIT.integrity, 'hub public key does not match the fingerprint pinned at install time', 409),
  NOT_ENROLLED: def(false, EXIT.refused, 'listener has no active root KEK yet', 409),
  TARGET_KEK_NOT_ACTIVE: def(false, EXIT.refused, 'the target has a KEK of its own that is not active yet (requested, awaiting approval or confirmation): nothing is wrapped for it', 409),
  TARGET_KEK_NOT_FOUND: def(false, EXIT.notFound, 'no KEK request for this target of this listener', 404),
  TARGET_KEK_STATE_INVALID: def(false, EXIT.refused, 'the target KEK is not in a state that allows this (not awaiting approval, or not awaiting confirmation)', 409),
  TARGET_KEK_NOT_ROTATABLE: def(
    false,
    EXIT.refused,
    "this target's KEK cannot carry its successor (the target is served under the site's root KEK, or its transit KEK unwraps only session objects): request a new one with `target request`",
    409,
  ),
  TARGET_KIND_NOT_ALLOWED: def(false, EXIT.refused, "the key's policy does not allow this kind of target (an HSM-only key never reaches a keystore, a cloud or a key block)", 409),
  TARGET_KIND_MISMATCH: def(false, EXIT.refused, 'the target KEK request names a kind other than the one the hub knows for this target: nothing is recorded or made', 409),
  TARGET_NOT_APPROVED: def(false, EXIT.refused, 'the target is awaiting an operator approval of its signed update, or was removed: nothing is sent to it', 409),
  KEY_TARGET_POLICY_CHANGED: def(false, EXIT.refused, "the key's target policy changed since the approval request was made: request the change again", 409),
  TARGET_UPDATE_NOT_FOUND: def(false, EXIT.notFound, 'no signed target update awaiting approval for this target of this listener', 404),
  // Site lifecycle: root KEK rotation, compromise, decommissioning
  KEK_ROTATION_PENDING: def(false, EXIT.refused, 'a root (or target) KEK rotation of this listener awaits its KCV confirmation; no second one starts until it is confirmed or refused', 409),
  KEK_ROTATION_BLOCKED: def(true, EXIT.refused, 'packages issued under an older root (or target) KEK of this listener are still unconfirmed; the site would drop that KEK on this rotation', 409),
  KEK_STATE_INVALID: def(false, EXIT.refused, 'the root KEK named is not awaiting confirmation (compromised, revoked, retired or refused): a confirmation changes nothing', 409),
  // Domain
  INPUT_INVALID: def(false, EXIT.usage, 'request is invalid'),
  KEY_NOT_FOUND: def(false, EXIT.notFound, 'no such key', 404),
  KEY_EXISTS: def(false, EXIT.refused, 'a key with that name already exists', 409),
  KEY_USAGE_INVALID: def(false, EXIT.usage, 'a usage the key type cannot have (e.g. encrypt for an HMAC or EC key, derive for RSA)'),
  KEY_USAGE_CONFLICT: def(false, EXIT.usage, 'usages that together allow extracting keys (wrap with decrypt, unwrap with encrypt) are refused'),
  KEY_STATE_TRANSITION_INVALID: def(false, EXIT.refused, 'NIST SP 800-57 does not allow this key version to go from its state to the one asked for', 409),
  KEY_VERSION_NOT_ACTIVE: def(false, EXIT.refused, 'the key version is not active (pre-activation, suspended, deactivated, compromised or destroyed): it is not distributed', 409),
  KEY_ROTATION_CONFLICT: def(true, EXIT.refused, 'the key got a new version while this rotation was prepared; run it again', 409),
  KEY_NOT_A_PAIR: def(false, EXIT.refused, 'certificates and CSRs are for key pairs (RSA, EC): a secret key has no public key to certify', 409),
  KEY_VERSION_NOT_CERTIFIABLE: def(false, EXIT.refused, 'the key version is compromised or destroyed: no certificate, CSR or chain is made or stored for it', 409),
  KEY_CERTIFICATE_NOT_FOUND: def(false, EXIT.notFound, 'the key version has no certificate chain yet: issue one from the hub CA or import one', 404),
  CERTIFICATE_KEY_MISMATCH: def(false, EXIT.refused, "the chain's leaf certificate certifies another public key than the key version's", 409),
  CERTIFICATE_CHAIN_INVALID: def(false, EXIT.usage, 'the certificate chain is malformed, too long, expired, or a certificate is not signed by the next one', 400),
  CERTIFICATE_REQUIRED: def(
    false,
    EXIT.refused,
    'a key pair goes into a keystore only with its certificate chain: issue one (`keyhub key certificate <name>`) or import one, then distribute again',
    409,
  ),
  ROW_MAC_INVALID: def(false, EXIT.integrity, 'a stored key or KEK row does not match its HSM MAC (moved, altered or not bound): nothing was unwrapped', 409),
  LISTENER_NOT_FOUND: def(false, EXIT.notFound, 'no such listener', 404),
  LISTENER_STATE_INVALID: def(false, EXIT.refused, 'listener is not in a state that allows this action', 409),
  DISTRIBUTION_NOT_FOUND: def(false, EXIT.notFound, 'no such distribution', 404),
  PLACEMENT_NOT_FOUND: def(false, EXIT.notFound, 'no such distribution policy (placement)', 404),
  PLACEMENT_EXISTS: def(false, EXIT.refused, 'a distribution policy (placement) with that name already exists', 409),
  INVENTORY_STALE: def(false, EXIT.refused, 'inventory report is older than the one the hub holds, or outside the freshness window: ignored', 409),
  INVENTORY_EARLY: def(true, EXIT.refused, "the site's root KEK is not confirmed yet: its inventory is taken once it is", 409),
  AUDIT_CHAIN_BROKEN: def(false, EXIT.integrity, 'audit hash chain or checkpoint does not verify', 409),
  AUDIT_RANGE_EMPTY: def(false, EXIT.notFound, 'no audit event falls in the range asked for (--from/--to)', 404),
  REPORT_TOO_LARGE: def(false, EXIT.refused, 'the report has more rows than its format allows (PDF and CSV limits in REPORT_LIMITS): page through the JSON, use CSV, or narrow the period', 413),
  REPORT_CURSOR_INVALID: def(false, EXIT.usage, 'the report page cursor (`after`) is not one this report handed out'),
  NOT_INITIALIZED: def(false, EXIT.refused, 'hub is not initialized: run `keyhub init`', 503),
  // API access: authentication, authorization, abuse
  AUTH_MISSING: def(false, EXIT.auth, 'no credential: send a bearer token (Authorization: Bearer ...) or a client certificate', 401),
  AUTH_INVALID: def(false, EXIT.auth, 'credential is malformed or not known to this hub', 401),
  AUTH_EXPIRED: def(false, EXIT.auth, 'token has expired', 401),
  AUTH_REVOKED: def(false, EXIT.auth, 'token or operator has been revoked', 401),
  CERTIFICATE_INVALID: def(false, EXIT.auth, 'client certificate was not issued by this hub for an operator, or has expired', 401),
  CERTIFICATE_NOT_FOUND: def(false, EXIT.notFound, 'no certificate with that serial was issued by this hub', 404),
  CERTIFICATE_REVOKED: def(false, EXIT.auth, 'client certificate has been revoked', 401),
  PERMISSION_DENIED: def(false, EXIT.forbidden, 'the authenticated operator lacks the permission this action needs', 403),
  RATE_LIMITED: def(true, EXIT.refused, 'too many requests from this credential; retry later', 429),
  // Dashboard browser sessions: forms need the session's CSRF token and must come from the hub's own origin.
  CSRF_TOKEN_INVALID: def(false, EXIT.forbidden, 'the form was posted without the CSRF token of this dashboard session, or with a wrong one', 403),
  ORIGIN_REFUSED: def(false, EXIT.forbidden, "the form was posted from another origin than the hub's own (Origin header missing or foreign)", 403),
  REQUEST_MALFORMED: def(false, EXIT.usage, 'request body is not valid JSON', 400),
  REQUEST_TOO_LARGE: def(false, EXIT.usage, 'request body exceeds the size limit', 413),
  ROUTE_NOT_FOUND: def(false, EXIT.notFound, 'no such API route', 404),
  HUB_UNAVAILABLE: def(true, EXIT.unavailable, 'the hub API is unreachable', 503),
  TLS_UNTRUSTED: def(false, EXIT.integrity, 'the server did not present a certificate from the pinned hub CA', 502),
  // Operators and tokens
  OPERATOR_NOT_FOUND: def(false, EXIT.notFound, 'no such operator', 404),
  OPERATOR_EXISTS: def(false, EXIT.refused, 'an operator with that name already exists', 409),
  OPERATOR_STATE_INVALID: def(false, EXIT.refused, 'operator is revoked', 409),
  TOKEN_NOT_FOUND: def(false, EXIT.notFound, 'no such token', 404),
  ROLE_ESCALATION: def(false, EXIT.forbidden, 'a token cannot carry roles its creator does not hold', 403),
  // Dual control
  APPROVAL_NOT_FOUND: def(false, EXIT.notFound, 'no such approval request', 404),
  APPROVAL_STATE_INVALID: def(false, EXIT.refused, 'approval request is not pending (executed, rejected, expired or cancelled)', 409),
  APPROVAL_HASH_MISMATCH: def(false, EXIT.refused, 'the hash given does not match the stored request: look at the request again', 409),
  APPROVAL_SELF: def(false, EXIT.forbidden, 'the requester cannot approve or reject their own request', 403),
  APPROVAL_DUPLICATE: def(false, EXIT.refused, 'this operator has already decided on this request', 409),
  APPROVER_NOT_CUSTODIAN: def(false, EXIT.forbidden, 'only the custodians a root KEK ceremony names decide on it', 403),
  POLICY_QUORUM_UNAVAILABLE: def(false, EXIT.refused, 'not enough active approvers to satisfy this approval policy', 409),
  PICKUP_UNAVAILABLE: def(false, EXIT.refused, 'nothing to pick up: not the requester, not executed, or picked up already', 409),
  // Infrastructure
  HSM_MODULE_LOAD_FAILED: def(false, EXIT.hsm, 'PKCS#11 module could not be loaded', 503),
  HSM_TOKEN_NOT_FOUND: def(false, EXIT.hsm, 'no token with the configured label', 503),
  HSM_PIN_INCORRECT: def(false, EXIT.hsm, 'token refused the PIN', 503),
  HSM_PIN_MISSING: def(false, EXIT.hsm, 'no PIN configured for the token', 503),
  HSM_OBJECT_NOT_FOUND: def(false, EXIT.hsm, 'expected object is not in the token', 500),
  HSM_ERROR: def(false, EXIT.hsm, 'PKCS#11 call failed', 500),
  DB_UNAVAILABLE: def(true, EXIT.unavailable, 'database is unreachable', 503),
  BUS_UNAVAILABLE: def(true, EXIT.unavailable, 'NATS is unreachable', 503),
  BUS_CONFIG_TAMPERED: def(false, EXIT.integrity, 'a JetStream stream or consumer differs from what Keyhub set up, in a way the hub cannot repair', 500),
  LISTENER_NOT_REGISTERED: def(false, EXIT.refused, 'no open registration for this listener id (keyhub listener register)', 409),
  CONFIG_INVALID: def(false, EXIT.usage, 'configuration is missing or invalid', 500),
  SECRET_FILE_PERMISSIONS: def(false, EXIT.usage, 'a secret file or the listener home is accessible to others than its owner', 500),
  TIMEOUT: def(true, EXIT.timeout, 'operation did not finish in time', 504),
  INTERNAL: def(false, EXIT.failure, 'internal error', 500),
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}
