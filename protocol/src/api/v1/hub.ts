import { z } from 'zod';

export const hubInfo = z.strictObject({ fingerprint: z.string(), version: z.string() });
export const caBundle = z.strictObject({ rootPem: z.string(), tlsIssuingPem: z.string(), keyIssuingPem: z.string() });
export const healthBody = z.strictObject({ status: z.enum(['ok', 'starting', 'stopping']) });
export type CaBundle = z.infer<typeof caBundle>;

/** The CAs that publish a CRL through the API: the issuers of operator, server and key certificates. */
export const CRL_PROFILES = ['tls-issuing', 'key-issuing'] as const;
export const crlProfile = z.enum(CRL_PROFILES);
export type CrlProfile = z.infer<typeof crlProfile>;
/** A fresh CRL signed by that CA: `der` is the DER in base64, `pem` the same as PEM (what `openssl verify -CRLfile` reads). */
export const crlBody = z.strictObject({ profile: crlProfile, der: z.string(), pem: z.string() });
export type CrlBody = z.infer<typeof crlBody>;
