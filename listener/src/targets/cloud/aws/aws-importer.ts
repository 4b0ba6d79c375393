import {
  CreateAliasCommand,
  CreateKeyCommand,
  DeleteImportedKeyMaterialCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  GenerateMacCommand,
  GetParametersForImportCommand,
  ImportKeyMaterialCommand,
  KMSClient,
  type KeyMetadata,
  type MacAlgorithmSpec,
} from '@aws-sdk/client-kms';
import { isKeyPair } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { describeWrap } from '../byok/algorithms';
import { SOFTHSM2_WRAP_OPTIONS, type HsmWrapOptions } from '../byok/hsm-wrap';
import { wrapMaterial } from '../byok/wrap-material';
import type { CloudImporter, CloudImportRequest, CloudImportResult, CloudKeyRef } from '../importer';
import { withRetry } from '../retry';
import { awsError } from './aws-errors';
import { awsAlias, awsKeySpec, awsWrap, type AwsKmsSettings } from './aws-settings';

/** A KMS client for the settings: the SDK's own retries off (ours back off, see retry.ts). */
export function awsKmsClient(s: AwsKmsSettings): KMSClient {
  return new KMSClient({
    region: s.region,
    maxAttempts: 1,
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    ...(s.credentials.kind === 'static' ? { credentials: { accessKeyId: s.credentials.accessKeyId, secretAccessKey: s.credentials.secretAccessKey, sessionToken: s.credentials.sessionToken } } : {}),
  });
}

/**
 * BYOK into AWS KMS: one KMS key (Origin EXTERNAL) per Keyhub key version,
 * found by its alias; GetParametersForImport -> wrap for the returned public
 * key -> ImportKeyMaterial with the expiration model always given. An
 * expired import token earns one fresh set of parameters and a new wrap;
 * a second expiry is reported (CLOUD_IMPORT_TOKEN_EXPIRED).
 */
export class AwsKmsImporter implements CloudImporter {
  readonly cloud = 'aws' as const;

  constructor(
    private readonly client: KMSClient,
    private readonly settings: AwsKmsSettings,
    private readonly hsmWrap: HsmWrapOptions = SOFTHSM2_WRAP_OPTIONS,
  ) {}

  async importKey(req: CloudImportRequest): Promise<CloudImportResult> {
    try {
      const { spec, usage } = awsKeySpec(req.algorithm);
      const wrap = awsWrap(this.settings.wrappingAlgorithm);
      if (wrap.construction === 'rsa-oaep' && isKeyPair(req.algorithm)) {
        throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'RSAES_OAEP cannot carry a private key; use RSA_AES_KEY_WRAP', { details: { algorithm: req.algorithm } });
      }
      const alias = awsAlias(this.settings.aliasPrefix, req.keyName, req.version);
      const key = (await this.findKey(alias)) ?? (await this.createKey(alias, spec, usage, req));
      if (key.KeySpec !== spec || key.Origin !== 'EXTERNAL') {
        throw new KeyhubError('CLOUD_MATERIAL_REJECTED', 'the KMS key behind the alias is not an EXTERNAL key of the expected spec', { details: { alias, keySpec: key.KeySpec ?? '' } });
      }
      const keyId = key.KeyId as string;
      let imported: { kcv: string; keyMaterialId?: string };
      try {
        imported = await this.importOnce(keyId, req);
      } catch (err) {
        if (!KeyhubError.is(err, 'CLOUD_IMPORT_TOKEN_EXPIRED')) throw err;
        imported = await this.importOnce(keyId, req);
      }
      const after = await this.findKey(alias);
      return {
        cloudKeyId: key.Arn ?? keyId,
        cloudVersionId: imported.keyMaterialId ?? `v${req.version}`,
        importState: after?.KeyState ?? 'Unknown',
        kcv: imported.kcv,
        wrapping: describeWrap(wrap),
      };
    } finally {
      if (req.material.source === 'bytes') req.material.bytes.fill(0);
    }
  }

  async disable(ref: CloudKeyRef): Promise<void> {
    const key = await this.findKey(awsAlias(this.settings.aliasPrefix, ref.keyName, ref.version));
    if (!key) throw new KeyhubError('KEY_NOT_FOUND', 'no KMS key for this key version', { details: { keyName: ref.keyName, version: ref.version } });
    await this.call('DisableKey', () => this.client.send(new DisableKeyCommand({ KeyId: key.KeyId })));
  }

  /** Deletes the imported material (the key becomes PendingImport, unusable); idempotent. */
  async destroy(ref: CloudKeyRef): Promise<void> {
    const key = await this.findKey(awsAlias(this.settings.aliasPrefix, ref.keyName, ref.version));
    if (!key || key.KeyState === 'PendingImport') return;
    await this.call('DeleteImportedKeyMaterial', () => this.client.send(new DeleteImportedKeyMaterialCommand({ KeyId: key.KeyId })));
  }

  /** Proof of possession for HMAC keys: the MAC KMS computes over `message`, to compare with the hub's. */
  async macProof(ref: CloudKeyRef, message: Buffer, macAlgorithm: MacAlgorithmSpec): Promise<Buffer> {
    const alias = awsAlias(this.settings.aliasPrefix, ref.keyName, ref.version);
    const out = await this.call('GenerateMac', () => this.client.send(new GenerateMacCommand({ KeyId: alias, Message: message, MacAlgorithm: macAlgorithm })));
    return Buffer.from(out.Mac ?? []);
  }

  private async importOnce(keyId: string, req: CloudImportRequest): Promise<{ kcv: string; keyMaterialId?: string }> {
    const { wrappingAlgorithm, wrappingKeySpec, expiration } = this.settings;
    const params = await this.call('GetParametersForImport', () =>
      this.client.send(new GetParametersForImportCommand({ KeyId: keyId, WrappingAlgorithm: wrappingAlgorithm, WrappingKeySpec: wrappingKeySpec })),
    );
    if (!params.PublicKey || !params.ImportToken) throw new KeyhubError('CLOUD_IMPORT_TOKEN_INVALID', 'GetParametersForImport returned no wrapping key or token');
    const wrapped = await wrapMaterial(req.material, req.algorithm, Buffer.from(params.PublicKey), awsWrap(wrappingAlgorithm), this.hsmWrap, true);
    const out = await this.call('ImportKeyMaterial', () =>
      this.client.send(
        new ImportKeyMaterialCommand({
          KeyId: keyId,
          ImportToken: params.ImportToken,
          EncryptedKeyMaterial: wrapped.blob,
          ExpirationModel: expiration.model,
          ...(expiration.validTo ? { ValidTo: expiration.validTo } : {}),
        }),
      ),
    );
    return { kcv: wrapped.kcv, keyMaterialId: out.KeyMaterialId };
  }

  private async findKey(alias: string): Promise<KeyMetadata | undefined> {
    try {
      const out = await this.call('DescribeKey', () => this.client.send(new DescribeKeyCommand({ KeyId: alias })));
      return out.KeyMetadata;
    } catch (err) {
      if (err instanceof KeyhubError && err.details?.awsError === 'NotFoundException') return undefined;
      throw err;
    }
  }

  private async createKey(alias: string, spec: KeyMetadata['KeySpec'], usage: KeyMetadata['KeyUsage'], req: CloudImportRequest): Promise<KeyMetadata> {
    const out = await this.call('CreateKey', () =>
      this.client.send(
        new CreateKeyCommand({
          Origin: 'EXTERNAL',
          KeySpec: spec,
          KeyUsage: usage,
          Description: `Keyhub ${req.keyName} v${req.version}`,
          Tags: [{ TagKey: 'keyhub:key', TagValue: req.keyName.slice(0, 256) }],
        }),
      ),
    );
    const meta = out.KeyMetadata;
    if (!meta?.KeyId) throw new KeyhubError('CLOUD_REQUEST_REJECTED', 'CreateKey returned no key id');
    await this.call('CreateAlias', () => this.client.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: meta.KeyId })));
    return meta;
  }

  private call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return withRetry(() => fn().catch((err: unknown) => Promise.reject(awsError(err, operation))), this.settings.retry);
  }
}
