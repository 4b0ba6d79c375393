import { z } from 'zod';
import { operatorName, role, roleList, shortText, timestamp, uuid } from './common';

export const TOKEN_TTL_MAX_SECONDS = 366 * 86_400;
const ttlSeconds = z.number().int().min(60).max(TOKEN_TTL_MAX_SECONDS);

export const operatorView = z.strictObject({
  id: uuid,
  name: operatorName,
  roles: z.array(role),
  state: z.enum(['active', 'revoked']),
  createdAt: timestamp,
  createdBy: z.string(),
  revokedAt: timestamp.nullable(),
  activeTokens: z.number().int().min(0),
});
export type OperatorView = z.infer<typeof operatorView>;
export const operatorList = z.strictObject({ operators: z.array(operatorView) });

export const createOperatorBody = z.strictObject({
  name: operatorName,
  roles: roleList,
  /** Lifetime of the first token, picked up by the requester. */
  tokenTtlSeconds: ttlSeconds.optional(),
});
export type CreateOperatorBody = z.infer<typeof createOperatorBody>;

export const changeRolesBody = z
  .strictObject({ add: z.array(role).max(4).optional(), remove: z.array(role).max(4).optional() })
  .refine((b) => (b.add?.length ?? 0) + (b.remove?.length ?? 0) > 0, { message: 'give roles to add or remove' });
export type ChangeRolesBody = z.infer<typeof changeRolesBody>;

/** A token's secret appears in exactly one response: the one that created it. */
export const issuedToken = z.strictObject({
  id: z.string(),
  token: z.string(),
  operator: operatorName,
  roles: z.array(role).nullable(),
  expiresAt: timestamp,
});
export type IssuedToken = z.infer<typeof issuedToken>;

export const createOperatorResult = z.strictObject({ operator: operatorView, token: issuedToken });

export const createTokenBody = z.strictObject({
  /** Another operator (admin, and dual control when `operator.manage` is on); default: the caller. */
  operator: operatorName.optional(),
  /** Scope the token down to these roles (a subset of the operator's); default: all of them. */
  roles: roleList.optional(),
  ttlSeconds: ttlSeconds.optional(),
  description: shortText.optional(),
});
export type CreateTokenBody = z.infer<typeof createTokenBody>;

export const tokenView = z.strictObject({
  id: z.string(),
  operator: operatorName,
  roles: z.array(role).nullable(),
  description: z.string(),
  createdAt: timestamp,
  expiresAt: timestamp,
  lastUsedAt: timestamp.nullable(),
  revokedAt: timestamp.nullable(),
});
export const tokenList = z.strictObject({ tokens: z.array(tokenView) });

export const whoami = z.strictObject({
  operator: z.strictObject({ id: uuid, name: operatorName, roles: z.array(role) }),
  method: z.enum(['token', 'certificate']),
  token: z.strictObject({ id: z.string(), roles: z.array(role).nullable(), expiresAt: timestamp }).nullable(),
  /** Roles in force for this credential: the operator's, narrowed by the token's scope. */
  roles: z.array(role),
  permissions: z.array(z.string()),
});
export type Whoami = z.infer<typeof whoami>;

/** An operator's client certificate for mTLS, issued by the hub CA to a public key the client made. */
export const certificateRequestBody = z.strictObject({
  /** PEM SubjectPublicKeyInfo of a key the operator generated and keeps. */
  publicKeyPem: z.string().min(64).max(4096),
  validityDays: z.number().int().min(1).max(397).optional(),
});
export type CertificateRequestBody = z.infer<typeof certificateRequestBody>;
export const issuedCertificate = z.strictObject({ serial: z.string(), certificatePem: z.string(), chainPem: z.string(), notAfter: timestamp });
export type IssuedCertificate = z.infer<typeof issuedCertificate>;
/** A certificate's serial as the API takes it: hex, as `openssl x509 -serial` prints it (colons allowed). */
export const certificateSerial = z.string().regex(/^[0-9a-fA-F:]{2,96}$/);
/** A client certificate by serial (public material): readable by its operator, admins and auditors. */
export const certificateView = z.strictObject({
  serial: z.string(),
  operator: operatorName.nullable(),
  certificatePem: z.string(),
  notBefore: timestamp,
  notAfter: timestamp,
  revokedAt: timestamp.nullable(),
});
export type CertificateView = z.infer<typeof certificateView>;
/** `revoked` is false when it was revoked already (the first revocation stands). */
export const certificateRevoked = z.strictObject({ serial: z.string(), revoked: z.boolean(), revokedAt: timestamp });
export type CertificateRevoked = z.infer<typeof certificateRevoked>;
/** RFC 5280 reasons an operator or admin may give (the CA reasons are not for operator certificates). */
export const CERTIFICATE_REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const;
export const certificateRevocationReason = z.enum(CERTIFICATE_REVOCATION_REASONS);
export type CertificateRevocationReason = z.infer<typeof certificateRevocationReason>;
export type TokenList = z.infer<typeof tokenList>;
export const createTokenPickup = z.strictObject({ token: issuedToken });
