import type { TokenCredential } from '@azure/core-auth';
import { ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential } from '@azure/identity';
import { KeyhubError } from '@keyhub/shared';
import type { KeyAlgorithm } from '@keyhub/protocol';
import { z } from 'zod';
import { retrySettings } from '../retry-settings';

/**
 * An Azure Key Vault (Premium) or Managed HSM target. The KEK is the vault's
 * RSA-HSM key with only the `import` operation, made by the vault's admin
 * (`az keyvault key create --kty RSA-HSM --ops import`); Keyhub only reads
 * its public half. Platform identities (managed identity, workload identity)
 * leave no secret at the site; `client-secret` is for sites outside Azure;
 * `static-token` is a bearer token handed in from outside (tests, or a
 * token broker).
 */
export const azureKeyVaultSettings = z.strictObject({
  vaultUrl: z.url().max(512),
  kekName: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/),
  /**
   * `byok`: the .byok file into Key Vault Premium / Managed HSM. `jwk`: a
   * vault that is not HSM-backed, where the key travels in clear inside TLS;
   * only keys whose policy allows it (CloudImportRequest.allowClearImport).
   */
  importMode: z.enum(['byok', 'jwk']).default('byok'),
  credentials: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('managed-identity'), clientId: z.string().max(64).optional() }),
    z.strictObject({ kind: z.literal('workload-identity') }),
    z.strictObject({ kind: z.literal('client-secret'), tenantId: z.string().min(1).max(64), clientId: z.string().min(1).max(64), clientSecret: z.string().min(1).max(512) }),
    z.strictObject({ kind: z.literal('static-token'), token: z.string().min(1).max(16_384) }),
  ]),
  /** Plain HTTP and a challenge resource other than vault.azure.net: only for the local stand-in. */
  insecureLocalEndpoint: z.boolean().default(false),
  expiresOn: z.coerce.date().optional(),
  retry: retrySettings,
});
export type AzureKeyVaultSettings = z.infer<typeof azureKeyVaultSettings>;

export function azureCredential(c: AzureKeyVaultSettings['credentials']): TokenCredential {
  switch (c.kind) {
    case 'managed-identity':
      return c.clientId ? new ManagedIdentityCredential({ clientId: c.clientId }) : new ManagedIdentityCredential();
    case 'workload-identity':
      return new WorkloadIdentityCredential();
    case 'client-secret':
      return new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret);
    case 'static-token': {
      const token = c.token;
      return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }) };
    }
  }
}

export interface AzureKeyShape {
  kty: 'oct-HSM' | 'RSA-HSM' | 'EC-HSM';
  crv?: 'P-256' | 'P-384' | 'P-521';
  keyOps: Array<'encrypt' | 'decrypt' | 'sign' | 'verify' | 'wrapKey' | 'unwrapKey'>;
}

const SHAPES: Partial<Record<KeyAlgorithm, AzureKeyShape>> = {
  // oct-HSM exists on Managed HSM only; Key Vault Premium takes RSA-HSM and EC-HSM.
  'AES-128': { kty: 'oct-HSM', keyOps: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
  'AES-192': { kty: 'oct-HSM', keyOps: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
  'AES-256': { kty: 'oct-HSM', keyOps: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
  'RSA-2048': { kty: 'RSA-HSM', keyOps: ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
  'RSA-3072': { kty: 'RSA-HSM', keyOps: ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
  'RSA-4096': { kty: 'RSA-HSM', keyOps: ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
  'EC-P256': { kty: 'EC-HSM', crv: 'P-256', keyOps: ['sign', 'verify'] },
  'EC-P384': { kty: 'EC-HSM', crv: 'P-384', keyOps: ['sign', 'verify'] },
  'EC-P521': { kty: 'EC-HSM', crv: 'P-521', keyOps: ['sign', 'verify'] },
};

export function azureKeyShape(algorithm: KeyAlgorithm): AzureKeyShape {
  const s = SHAPES[algorithm];
  if (!s) throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'Azure Key Vault has no HSM key type for this algorithm', { details: { algorithm } });
  return s;
}

/** Key Vault names allow [0-9a-zA-Z-]; other characters become '-'. */
export function azureKeyName(keyName: string): string {
  return keyName.replace(/[^0-9a-zA-Z-]/g, '-').slice(0, 127);
}
