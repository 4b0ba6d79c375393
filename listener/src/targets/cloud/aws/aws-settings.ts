import type { KeySpec, KeyUsageType } from '@aws-sdk/client-kms';
import { KeyhubError } from '@keyhub/shared';
import type { KeyAlgorithm } from '@keyhub/protocol';
import { z } from 'zod';
import type { ByokWrapAlgorithm } from '../byok/algorithms';
import { retrySettings } from '../retry-settings';

export const AWS_WRAPPING_ALGORITHMS = ['RSA_AES_KEY_WRAP_SHA_1', 'RSA_AES_KEY_WRAP_SHA_256', 'RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'] as const;
export type AwsWrappingAlgorithm = (typeof AWS_WRAPPING_ALGORITHMS)[number];

/**
 * An AWS KMS target. `credentials.kind: 'platform'` leaves credentials to the
 * SDK's provider chain (instance role, IRSA web identity, ECS task role), so
 * that a listener running in AWS holds no long-lived secret; tests always
 * use `static` with a local `endpoint`.
 */
export const awsKmsSettings = z.strictObject({
  region: z.string().regex(/^[a-z0-9-]{1,32}$/),
  endpoint: z.url().max(512).optional(),
  credentials: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('static'), accessKeyId: z.string().min(1).max(128), secretAccessKey: z.string().min(1).max(256), sessionToken: z.string().max(4096).optional() }),
    z.strictObject({ kind: z.literal('platform') }),
  ]),
  wrappingAlgorithm: z.enum(AWS_WRAPPING_ALGORITHMS).default('RSA_AES_KEY_WRAP_SHA_256'),
  wrappingKeySpec: z.enum(['RSA_2048', 'RSA_3072', 'RSA_4096']).default('RSA_4096'),
  /** Always sent with ImportKeyMaterial; AWS's implicit default (expires, with ValidTo required) surprises. */
  expiration: z.strictObject({ model: z.enum(['KEY_MATERIAL_DOES_NOT_EXPIRE', 'KEY_MATERIAL_EXPIRES']), validTo: z.coerce.date().optional() }),
  /** One KMS key per Keyhub key version, found by the alias `<prefix><key name>/v<version>`. */
  aliasPrefix: z
    .string()
    .regex(/^alias\/[A-Za-z0-9/_-]{0,200}$/)
    .refine((s) => !s.startsWith('alias/aws/'), 'alias/aws/ is reserved')
    .default('alias/keyhub/'),
  retry: retrySettings,
});
export type AwsKmsSettings = z.infer<typeof awsKmsSettings>;

export function awsWrap(a: AwsWrappingAlgorithm): ByokWrapAlgorithm {
  return { construction: a.startsWith('RSA_AES') ? 'rsa-aes-kwp' : 'rsa-oaep', hash: a.endsWith('SHA_1') ? 'sha1' : 'sha256' };
}

const SPECS: Partial<Record<KeyAlgorithm, { spec: KeySpec; usage: KeyUsageType }>> = {
  // AWS imports symmetric encryption material only as 256-bit (SYMMETRIC_DEFAULT).
  'AES-256': { spec: 'SYMMETRIC_DEFAULT', usage: 'ENCRYPT_DECRYPT' },
  'HMAC-SHA256': { spec: 'HMAC_256', usage: 'GENERATE_VERIFY_MAC' },
  'HMAC-SHA384': { spec: 'HMAC_384', usage: 'GENERATE_VERIFY_MAC' },
  'HMAC-SHA512': { spec: 'HMAC_512', usage: 'GENERATE_VERIFY_MAC' },
  'RSA-2048': { spec: 'RSA_2048', usage: 'SIGN_VERIFY' },
  'RSA-3072': { spec: 'RSA_3072', usage: 'SIGN_VERIFY' },
  'RSA-4096': { spec: 'RSA_4096', usage: 'SIGN_VERIFY' },
  'EC-P256': { spec: 'ECC_NIST_P256', usage: 'SIGN_VERIFY' },
  'EC-P384': { spec: 'ECC_NIST_P384', usage: 'SIGN_VERIFY' },
  'EC-P521': { spec: 'ECC_NIST_P521', usage: 'SIGN_VERIFY' },
};

/** The KMS key spec for a Keyhub algorithm; AWS has none for AES-128/192, TDES or generic secrets. */
export function awsKeySpec(algorithm: KeyAlgorithm): { spec: KeySpec; usage: KeyUsageType } {
  const s = SPECS[algorithm];
  if (!s) throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'AWS KMS has no key spec for this algorithm', { details: { algorithm } });
  return s;
}

/** Alias names allow [A-Za-z0-9/_-]; other characters of a key name become '-'. */
export function awsAlias(prefix: string, keyName: string, version: number): string {
  return `${prefix}${keyName.replace(/[^A-Za-z0-9_-]/g, '-')}/v${version}`;
}
