import { join } from 'node:path';
import { DescribeKeyCommand } from '@aws-sdk/client-kms';
import { KeyhubError, readSecret, type Hsm, type Logger, type SecretSource } from '@keyhub/shared';
import type { CloudTargetConfig, KeystoreTargetConfig, Tr31TargetConfig } from '../config';
import { awsError } from './cloud/aws/aws-errors';
import { AwsKmsImporter, awsKmsClient } from './cloud/aws/aws-importer';
import { awsKmsSettings, awsWrap } from './cloud/aws/aws-settings';
import { azureError } from './cloud/azure/azure-errors';
import { AzureKeyVaultImporter, azureKeyClient } from './cloud/azure/azure-importer';
import { azureKeyVaultSettings } from './cloud/azure/azure-settings';
import { SOFTHSM2_WRAP_OPTIONS, type HsmWrapOptions } from './cloud/byok/hsm-wrap';
import { gcpError } from './cloud/gcp/gcp-errors';
import { GcpKmsImporter, gcpKmsClient } from './cloud/gcp/gcp-importer';
import { gcpKmsSettings, gcpWrap } from './cloud/gcp/gcp-settings';
import { CloudTarget, type CloudTargetSettings } from './cloud-target';
import { KeystoreTarget } from './keystore-target';
import type { CloudImporter } from './cloud/importer';
import type { Target } from './target';
import { TransitKeys } from './transit-keys';
import { Tr31Target } from './tr31-target';

/** A target's secret from its environment variable or owner-only file; a missing one is a configuration error naming where it was looked for, never its value. */
export function targetSecret(source: SecretSource, what: string): string {
  try {
    return readSecret(source, what);
  } catch (err) {
    const e = KeyhubError.from(err);
    if (e.code === 'HSM_PIN_MISSING') throw new KeyhubError('CONFIG_INVALID', e.message);
    throw e;
  }
}

export interface TransitTargetOptions {
  /** The listener home: each target keeps its small index there (`target-<name>.json`). */
  home: string;
  logger?: Logger;
  /** The listener token's wrap profile (SoftHSM2: OAEP SHA-1 only, KWP pads to 8 bytes). */
  hsmWrap?: HsmWrapOptions;
  onWiped?: (wiped: readonly Buffer[]) => void;
}

/**
 * A keystore or cloud target from its configuration, with its transit keys
 * in the listener's own token. Secrets are read here, once, from where the
 * configuration says (keystore passwords at every open of the file).
 */
export function transitTarget(t: KeystoreTargetConfig | CloudTargetConfig | Tr31TargetConfig, hsm: Hsm, o: TransitTargetOptions): { target: Target; keys: TransitKeys } {
  const keys = new TransitKeys(hsm, t.name);
  const indexPath = join(o.home, `target-${t.name}.json`);
  if (t.kind === 'tr31') {
    // A payment HSM: TR-31 key blocks under a KBPK the listener makes in its token and establishes with it (tr31-target.ts).
    const { endpoint, version, transportKeyFingerprint, kbpkOaepHash, timeoutMs } = t;
    return { target: new Tr31Target(t.name, keys, { endpoint, version, transportKeyFingerprint, kbpkOaepHash, timeoutMs, logger: o.logger, onWiped: o.onWiped }), keys };
  }
  if (t.kind === 'keystore') {
    const target = new KeystoreTarget(t.name, keys, {
      type: t.type,
      path: t.path,
      password: () => targetSecret(t.password, `keystore password of target ${t.name}`),
      pkcs12KeyIterations: t.pkcs12KeyIterations,
      pkcs12MacIterations: t.pkcs12MacIterations,
      jceksIterations: t.jceksIterations,
      ...(t.importSlots !== undefined ? { importSlots: t.importSlots } : {}),
      indexPath,
      onWiped: o.onWiped,
    });
    return { target, keys };
  }
  const common = { indexPath, hsmWrap: o.hsmWrap ?? SOFTHSM2_WRAP_OPTIONS, logger: o.logger, onWiped: o.onWiped };
  // The credentials are read (and the client made) at first use, not at every start of the CLI: `keyhub-listener enroll` or
  // `target request` need no cloud secret; a missing one fails that target's imports and health with CONFIG_INVALID.
  let built: ReturnType<typeof cloudImporter> | undefined;
  const get = (): ReturnType<typeof cloudImporter> => (built ??= cloudImporter(t, common));
  const importer: CloudImporter = {
    cloud: t.kind === 'aws-kms' ? 'aws' : t.kind === 'azure-kv' ? 'azure' : 'gcp',
    importKey: (req) => get()[0].importKey(req),
    disable: (ref) => get()[0].disable(ref),
    destroy: (ref) => get()[0].destroy(ref),
  };
  const settings: CloudTargetSettings = { ...common, wrapHash: wrapHashOf(t), probe: () => get()[1].probe() };
  return { target: new CloudTarget(t.name, t.kind, keys, importer, settings), keys };
}

/** The OAEP hash of the target's wrap (or `clear` for a JWK import), from its configuration alone. */
function wrapHashOf(t: CloudTargetConfig): CloudTargetSettings['wrapHash'] {
  if (t.kind === 'aws-kms') return awsWrap(t.wrappingAlgorithm).hash;
  if (t.kind === 'azure-kv') return t.importMode === 'jwk' ? 'clear' : 'sha1';
  return gcpWrap(t.importMethod).hash;
}

type CommonCloud = Omit<CloudTargetSettings, 'wrapHash' | 'probe'>;

function cloudImporter(t: CloudTargetConfig, common: CommonCloud): [AwsKmsImporter | AzureKeyVaultImporter | GcpKmsImporter, CloudTargetSettings] {
  const what = (field: string): string => `${field} of target ${t.name}`;
  switch (t.kind) {
    case 'aws-kms': {
      const { name: _n, kind: _k, oaepHash: _o, transportKeyBits: _b, credentials, ...rest } = t;
      const settings = awsKmsSettings.parse({
        ...rest,
        credentials:
          credentials.kind === 'platform'
            ? credentials
            : {
                kind: 'static',
                accessKeyId: targetSecret(credentials.accessKeyId, what('AWS access key id')),
                secretAccessKey: targetSecret(credentials.secretAccessKey, what('AWS secret access key')),
                ...(credentials.sessionToken ? { sessionToken: targetSecret(credentials.sessionToken, what('AWS session token')) } : {}),
              },
      });
      const client = awsKmsClient(settings);
      const probe = async (): Promise<void> => {
        try {
          await client.send(new DescribeKeyCommand({ KeyId: `${settings.aliasPrefix}keyhub-health-probe` }));
        } catch (err) {
          // Not found: the endpoint answered and took the credentials.
          const e = awsError(err, 'DescribeKey');
          if (e.details?.awsError !== 'NotFoundException') throw e;
        }
      };
      return [new AwsKmsImporter(client, settings, common.hsmWrap), { ...common, wrapHash: awsWrap(settings.wrappingAlgorithm).hash, probe }];
    }
    case 'azure-kv': {
      const { name: _n, kind: _k, oaepHash: _o, transportKeyBits: _b, credentials, ...rest } = t;
      const c =
        credentials.kind === 'client-secret'
          ? { ...credentials, clientSecret: targetSecret(credentials.clientSecret, what('Azure client secret')) }
          : credentials.kind === 'static-token'
            ? { kind: 'static-token' as const, token: targetSecret(credentials.token, what('Azure bearer token')) }
            : credentials;
      const settings = azureKeyVaultSettings.parse({ ...rest, credentials: c });
      const client = azureKeyClient(settings);
      const probe = async (): Promise<void> => {
        try {
          await client.getKey(settings.kekName);
        } catch (err) {
          throw azureError(err, 'GetKey');
        }
      };
      return [new AzureKeyVaultImporter(client, settings, common.hsmWrap), { ...common, wrapHash: settings.importMode === 'jwk' ? 'clear' : 'sha1', probe }];
    }
    case 'gcp-kms': {
      const { name: _n, kind: _k, oaepHash: _o, transportKeyBits: _b, credentials, ...rest } = t;
      const c =
        credentials.kind === 'service-account'
          ? { ...credentials, privateKey: targetSecret(credentials.privateKey, what('Google service account key')) }
          : credentials.kind === 'static-token'
            ? { kind: 'static-token' as const, token: targetSecret(credentials.token, what('Google bearer token')) }
            : credentials;
      const settings = gcpKmsSettings.parse({ ...rest, credentials: c });
      const client = gcpKmsClient(settings);
      const probe = async (): Promise<void> => {
        try {
          await client.getCryptoKey({ name: `${settings.keyRing}/cryptoKeys/keyhub-health-probe` }, { retry: null });
        } catch (err) {
          const e = gcpError(err, 'GetCryptoKey');
          if (e.details?.gcpStatus !== 'NOT_FOUND') throw e;
        }
      };
      return [new GcpKmsImporter(client, settings, common.hsmWrap), { ...common, wrapHash: gcpWrap(settings.importMethod).hash, probe }];
    }
  }
}
