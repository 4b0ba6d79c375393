import type { ErrorCode } from '@keyhub/protocol';

/** The error codes the CA raises, in one place. */
export const CA_ERRORS = {
  /** Not issued by this hub's TLS CA, malformed, expired, or not an operator certificate. */
  certificateInvalid: 'CERTIFICATE_INVALID',
  certificateRevoked: 'CERTIFICATE_REVOKED',
  certificateNotFound: 'CERTIFICATE_NOT_FOUND',
  /** The operator a client certificate names is unknown (at issuance) or revoked (at login). */
  operatorNotFound: 'OPERATOR_NOT_FOUND',
  operatorRevoked: 'AUTH_REVOKED',
} as const satisfies Record<string, ErrorCode>;
