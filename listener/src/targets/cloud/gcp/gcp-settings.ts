import { KeyhubError } from '@keyhub/shared';
import type { KeyAlgorithm } from '@keyhub/protocol';
import type { protos } from '@google-cloud/kms';
import { GoogleAuth, JWT, OAuth2Client, type AnyAuthClient } from 'google-auth-library';
import { z } from 'zod';
import type { ByokWrapAlgorithm } from '../byok/algorithms';
import { retrySettings } from '../retry-settings';

export const GCP_IMPORT_METHODS = [
  'RSA_OAEP_3072_SHA1_AES_256',
  'RSA_OAEP_4096_SHA1_AES_256',
  'RSA_OAEP_3072_SHA256_AES_256',
  'RSA_OAEP_4096_SHA256_AES_256',
  'RSA_OAEP_3072_SHA256',
  'RSA_OAEP_4096_SHA256',
] as const;
export type GcpImportMethod = (typeof GCP_IMPORT_METHODS)[number];

const SCOPE = 'https://www.googleapis.com/auth/cloudkms';

/**
 * A Google Cloud KMS key ring target. `platform` uses Application Default
 * Credentials (workload identity, the VM's service account), so a listener
 * in Google Cloud holds no key file; `static-token` is a bearer token handed
 * in from outside (tests). An explicit auth client is always passed, so the
 * library never probes the metadata server on its own.
 */
export const gcpKmsSettings = z.strictObject({
  keyRing: z.string().regex(/^projects\/[a-z0-9-]{1,63}\/locations\/[a-z0-9-]{1,63}\/keyRings\/[A-Za-z0-9_-]{1,63}$/),
  endpoint: z.strictObject({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535), protocol: z.enum(['http', 'https']) }).optional(),
  credentials: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('platform') }),
    z.strictObject({ kind: z.literal('service-account'), clientEmail: z.string().min(1).max(256), privateKey: z.string().min(1).max(8192) }),
    z.strictObject({ kind: z.literal('static-token'), token: z.string().min(1).max(16_384) }),
  ]),
  importMethod: z.enum(GCP_IMPORT_METHODS).default('RSA_OAEP_4096_SHA256_AES_256'),
  protectionLevel: z.enum(['HSM', 'SOFTWARE']).default('HSM'),
  pollIntervalMs: z.number().int().min(1).max(60_000).default(1000),
  pollTimeoutMs: z.number().int().min(1).max(3600_000).default(120_000),
  retry: retrySettings,
});
export type GcpKmsSettings = z.infer<typeof gcpKmsSettings>;

/** The client options that carry the credentials: an explicit auth client, or ADC's GoogleAuth for platform identities. */
export function gcpAuthOptions(c: GcpKmsSettings['credentials']): { authClient: AnyAuthClient } | { auth: GoogleAuth } {
  switch (c.kind) {
    case 'platform':
      return { auth: new GoogleAuth({ scopes: [SCOPE] }) };
    case 'service-account':
      return { authClient: new JWT({ email: c.clientEmail, key: c.privateKey, scopes: [SCOPE] }) };
    case 'static-token': {
      const client = new OAuth2Client();
      client.setCredentials({ access_token: c.token, expiry_date: Date.now() + 3600_000 });
      return { authClient: client };
    }
  }
}

export function gcpWrap(m: GcpImportMethod): ByokWrapAlgorithm {
  return { construction: m.endsWith('_AES_256') ? 'rsa-aes-kwp' : 'rsa-oaep', hash: m.includes('SHA1') ? 'sha1' : 'sha256' };
}

type V1 = typeof protos.google.cloud.kms.v1;
export type GcpAlgorithm = keyof V1['CryptoKeyVersion']['CryptoKeyVersionAlgorithm'];
export type GcpPurpose = keyof V1['CryptoKey']['CryptoKeyPurpose'];
const ALGORITHMS: Partial<Record<KeyAlgorithm, { algorithm: GcpAlgorithm; purpose: GcpPurpose }>> = {
  'AES-128': { algorithm: 'AES_128_GCM', purpose: 'RAW_ENCRYPT_DECRYPT' },
  'AES-256': { algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION', purpose: 'ENCRYPT_DECRYPT' },
  'HMAC-SHA256': { algorithm: 'HMAC_SHA256', purpose: 'MAC' },
  'HMAC-SHA384': { algorithm: 'HMAC_SHA384', purpose: 'MAC' },
  'HMAC-SHA512': { algorithm: 'HMAC_SHA512', purpose: 'MAC' },
  'RSA-2048': { algorithm: 'RSA_SIGN_PSS_2048_SHA256', purpose: 'ASYMMETRIC_SIGN' },
  'RSA-3072': { algorithm: 'RSA_SIGN_PSS_3072_SHA256', purpose: 'ASYMMETRIC_SIGN' },
  'RSA-4096': { algorithm: 'RSA_SIGN_PSS_4096_SHA256', purpose: 'ASYMMETRIC_SIGN' },
  'EC-P256': { algorithm: 'EC_SIGN_P256_SHA256', purpose: 'ASYMMETRIC_SIGN' },
  'EC-P384': { algorithm: 'EC_SIGN_P384_SHA384', purpose: 'ASYMMETRIC_SIGN' },
};

export function gcpAlgorithm(algorithm: KeyAlgorithm): { algorithm: GcpAlgorithm; purpose: GcpPurpose } {
  const a = ALGORITHMS[algorithm];
  if (!a) throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'Google Cloud KMS has no import algorithm for this key type', { details: { algorithm } });
  return a;
}

/** One CryptoKey per Keyhub key version (ids allow [A-Za-z0-9_-], 63 characters). */
export function gcpCryptoKeyId(keyName: string, version: number): string {
  const suffix = `-v${version}`;
  return keyName.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 63 - suffix.length) + suffix;
}
