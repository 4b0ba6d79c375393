import { createPublicKey } from 'node:crypto';
import { KeyClient, type KeyVaultKey } from '@azure/keyvault-keys';
import { KeyhubError } from '@keyhub/shared';
import { SOFTHSM2_WRAP_OPTIONS, type HsmWrapOptions } from '../byok/hsm-wrap';
import { materialKcv } from '../byok/material-kcv';
import { wrapMaterial } from '../byok/wrap-material';
import type { CloudImporter, CloudImportRequest, CloudImportResult, CloudKeyRef } from '../importer';
import { withRetry } from '../retry';
import { byokFile } from './byok-file';
import { azureError } from './azure-errors';
import { azureCredential, azureKeyName, azureKeyShape, type AzureKeyShape, type AzureKeyVaultSettings } from './azure-settings';
import { materialJwk } from './jwk-material';

/** Azure's BYOK specification fixes RSA-OAEP with SHA-1 for the `.byok` construction. */
const BYOK_WRAP = { construction: 'rsa-aes-kwp', hash: 'sha1' } as const;
const TAG_VERSION = 'keyhub-version';
const TAG_KCV = 'keyhub-kcv';

export function azureKeyClient(s: AzureKeyVaultSettings): KeyClient {
  return new KeyClient(s.vaultUrl, azureCredential(s.credentials), {
    retryOptions: { maxRetries: 0 },
    ...(s.insecureLocalEndpoint ? { allowInsecureConnection: true, disableChallengeResourceVerification: true } : {}),
  });
}

/**
 * BYOK into Azure Key Vault / Managed HSM: read the KEK's public key, wrap
 * (CKM_RSA_AES_KEY_WRAP, OAEP SHA-1) into a `.byok` file and import it as
 * `key_hsm` with an *-HSM key type. Each Keyhub version becomes one Azure
 * version of the key, tagged with the Keyhub version and KCV, so a repeated
 * import of the same version is recognised (already present) instead of
 * stacking another Azure version.
 */
export class AzureKeyVaultImporter implements CloudImporter {
  readonly cloud = 'azure' as const;

  constructor(
    private readonly client: KeyClient,
    private readonly settings: AzureKeyVaultSettings,
    private readonly hsmWrap: HsmWrapOptions = SOFTHSM2_WRAP_OPTIONS,
  ) {}

  async importKey(req: CloudImportRequest): Promise<CloudImportResult> {
    try {
      const shape = azureKeyShape(req.algorithm);
      const name = azureKeyName(req.keyName);
      if (this.settings.importMode === 'jwk') return await this.importJwk(req, shape.keyOps, name);
      const kek = await this.call('GetKey', () => this.client.getKey(this.settings.kekName));
      const { spki, kekId } = kekPublicKey(kek);
      const wrapped = await wrapMaterial(req.material, req.algorithm, spki, BYOK_WRAP, this.hsmWrap);
      const present = await this.findVersion(name, req.version);
      if (present && present.tags?.[TAG_KCV] === wrapped.kcv) return this.result(name, present.version, present.enabled, wrapped.kcv);
      const key = await this.call('ImportKey', () =>
        this.client.importKey(
          name,
          { kty: shape.kty, t: byokFile(kekId, wrapped.blob), keyOps: shape.keyOps, ...(shape.crv ? { crv: shape.crv } : {}) },
          {
            hardwareProtected: true,
            enabled: true,
            ...this.expiry(),
            tags: this.tags(req, wrapped.kcv),
          },
        ),
      );
      return this.result(name, key.properties.version, key.properties.enabled, wrapped.kcv);
    } finally {
      if (req.material.source === 'bytes') req.material.bytes.fill(0);
    }
  }

  /**
   * A vault that is not HSM-backed takes no .byok: the key goes as a JWK, in
   * clear inside TLS, only when the key's policy allows it; the result says
   * so for the audit. HSM objects never go this way.
   */
  private async importJwk(req: CloudImportRequest, keyOps: AzureKeyShape['keyOps'], name: string): Promise<CloudImportResult> {
    if (!req.allowClearImport) throw new KeyhubError('CLOUD_CLEAR_IMPORT_REFUSED', "the key's policy does not allow a clear (JWK) import", { details: { keyName: req.keyName } });
    if (req.material.source !== 'bytes') throw new KeyhubError('CLOUD_WRAP_UNSUPPORTED', 'an HSM object is never exported in clear for a JWK import');
    const kcv = materialKcv(req.algorithm, req.material.bytes);
    const present = await this.findVersion(name, req.version);
    if (present && present.tags?.[TAG_KCV] === kcv) return { ...this.result(name, present.version, present.enabled, kcv), wrapping: 'JWK', clearImport: true };
    const { jwk, wipe } = materialJwk(req.algorithm, req.material.bytes, keyOps);
    try {
      const key = await this.call('ImportKey', () => this.client.importKey(name, jwk, { hardwareProtected: false, enabled: true, ...this.expiry(), tags: this.tags(req, kcv) }));
      return { ...this.result(name, key.properties.version, key.properties.enabled, kcv), wrapping: 'JWK', clearImport: true };
    } finally {
      wipe();
    }
  }

  private expiry(): { expiresOn?: Date } {
    return this.settings.expiresOn ? { expiresOn: this.settings.expiresOn } : {};
  }

  private tags(req: CloudImportRequest, kcv: string): Record<string, string> {
    return { 'keyhub-key': req.keyName.slice(0, 256), [TAG_VERSION]: String(req.version), [TAG_KCV]: kcv };
  }

  async disable(ref: CloudKeyRef): Promise<void> {
    const name = azureKeyName(ref.keyName);
    const v = await this.findVersion(name, ref.version);
    if (!v?.version) throw new KeyhubError('KEY_NOT_FOUND', 'no Azure key version for this key version', { details: { keyName: ref.keyName, version: ref.version } });
    const version = v.version;
    await this.call('UpdateKey', () => this.client.updateKeyProperties(name, version, { enabled: false }));
  }

  /**
   * Key Vault cannot remove one version's material: the version is disabled
   * and tagged destroyed. Deleting (and purging) the whole key is the vault
   * admin's step once every version is destroyed.
   */
  async destroy(ref: CloudKeyRef): Promise<void> {
    const name = azureKeyName(ref.keyName);
    const v = await this.findVersion(name, ref.version);
    if (!v?.version) return;
    const version = v.version;
    await this.call('UpdateKey', () => this.client.updateKeyProperties(name, version, { enabled: false, tags: { ...v.tags, 'keyhub-destroyed': 'true' } }));
  }

  private result(name: string, version: string | undefined, enabled: boolean | undefined, kcv: string): CloudImportResult {
    return {
      cloudKeyId: `${this.settings.vaultUrl.replace(/\/$/, '')}/keys/${name}`,
      cloudVersionId: version ?? '',
      importState: enabled ? 'Enabled' : 'Disabled',
      kcv,
      wrapping: 'CKM_RSA_AES_KEY_WRAP_SHA_1',
    };
  }

  private async findVersion(name: string, version: number): Promise<{ version?: string; enabled?: boolean; tags?: Record<string, string> } | undefined> {
    return this.call('ListKeyVersions', async () => {
      try {
        for await (const p of this.client.listPropertiesOfKeyVersions(name)) {
          if (p.tags?.[TAG_VERSION] === String(version)) return { version: p.version, enabled: p.enabled, tags: p.tags };
        }
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return undefined;
        throw err;
      }
      return undefined;
    });
  }

  private call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return withRetry(() => fn().catch((err: unknown) => Promise.reject(azureError(err, operation))), this.settings.retry);
  }
}

/** The KEK's public key as DER SPKI and its full id; the BYOK spec demands an RSA key whose only operation is `import`. */
function kekPublicKey(kek: KeyVaultKey): { spki: Buffer; kekId: string } {
  const jwk = kek.key;
  if (!kek.id || !jwk?.n || !jwk.e || !String(jwk.kty).startsWith('RSA')) throw new KeyhubError('CLOUD_IMPORT_TOKEN_INVALID', 'the Azure KEK is not an RSA key');
  const ops = kek.keyOperations ?? [];
  if (ops.length !== 1 || ops[0] !== 'import') throw new KeyhubError('CLOUD_IMPORT_TOKEN_INVALID', 'the Azure KEK must allow only the import operation', { details: { kekOps: ops.join(',') } });
  const spki = createPublicKey({ key: { kty: 'RSA', n: Buffer.from(jwk.n).toString('base64url'), e: Buffer.from(jwk.e).toString('base64url') }, format: 'jwk' }).export({
    format: 'der',
    type: 'spki',
  });
  return { spki, kekId: kek.id };
}
