import { z } from 'zod';
import { keyName, timestamp } from './common';

/*
 * Certificate chains for key pair versions (issue 12, Java keystores): a
 * keystore holds a private key with its chain, and the chain comes from the
 * hub, issued by its key-issuing CA or, through a CSR the hub HSM signs,
 * from an outside CA and imported.
 */

/** `/v1/keys/{name}/versions/{version}/...`: the version as the path gives it. */
export const keyVersionParams = z.strictObject({ name: keyName, version: z.coerce.number().int().min(1).max(2_147_483_647) });
export type KeyVersionParams = z.infer<typeof keyVersionParams>;

/** Subject attributes (RFC 5280 upper bounds); the hub refuses control characters. */
const subjectFields = {
  /** CN; default for a hub CA certificate: the key's name (when it fits in 64 characters). */
  commonName: z.string().min(1).max(64).optional(),
  organization: z.string().min(1).max(64).optional(),
  organizationalUnit: z.string().min(1).max(64).optional(),
};

/** Issue from the hub CA when the version has no chain yet; an existing chain is returned as it is. */
export const keyCertificateBody = z.strictObject({
  ...subjectFields,
  /** Validity in days; default the hub CA's for key certificates (365), never past the issuing CA's end. */
  validityDays: z.number().int().min(1).max(10_980).optional(),
});
export type KeyCertificateBody = z.infer<typeof keyCertificateBody>;

/** A chain from an outside CA, PEM, leaf first (each certificate signed by the next). */
export const keyCertificateImportBody = z.strictObject({
  chainPem: z
    .string()
    .min(1)
    .max(48 * 1024),
});
export type KeyCertificateImportBody = z.infer<typeof keyCertificateImportBody>;

export const KEY_CERTIFICATE_SOURCES = ['hub-ca', 'imported'] as const;

export const keyCertificateView = z.strictObject({
  key: keyName,
  version: z.number().int().min(1),
  source: z.enum(KEY_CERTIFICATE_SOURCES),
  /** The leaf's serial, lowercase hex. */
  serial: z.string().max(96),
  subject: z.string().max(2048),
  issuer: z.string().max(2048),
  notBefore: timestamp,
  notAfter: timestamp,
  /** Certificates in the chain, leaf first. */
  certificates: z.number().int().min(1),
  /** The chain as PEM: leaf, then each issuer up to the root when it was given. */
  chainPem: z.string(),
  /** Whether this call issued or stored it (false: the version already had it). */
  created: z.boolean(),
});
export type KeyCertificateView = z.infer<typeof keyCertificateView>;

/** A PKCS#10 request for the version's key pair, signed in the hub HSM by its private key. */
export const keyCsrBody = z.strictObject({ ...subjectFields, commonName: z.string().min(1).max(64) });
export type KeyCsrBody = z.infer<typeof keyCsrBody>;

export const keyCsrView = z.strictObject({
  key: keyName,
  version: z.number().int().min(1),
  subject: z.string().max(2048),
  /** sha256WithRSAEncryption or ecdsa-with-SHA256. */
  signatureAlgorithm: z.string().max(64),
  csrPem: z.string(),
});
export type KeyCsrView = z.infer<typeof keyCsrView>;
