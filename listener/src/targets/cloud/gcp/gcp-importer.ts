import { createPublicKey } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyManagementServiceClient, protos } from '@google-cloud/kms';
import { KeyhubError } from '@keyhub/shared';
import { SOFTHSM2_WRAP_OPTIONS, type HsmWrapOptions } from '../byok/hsm-wrap';
import { wrapMaterial } from '../byok/wrap-material';
import type { CloudImporter, CloudImportRequest, CloudImportResult, CloudKeyRef } from '../importer';
import { withRetry } from '../retry';
import { gcpError } from './gcp-errors';
import { gcpAlgorithm, gcpAuthOptions, gcpCryptoKeyId, gcpWrap, type GcpAlgorithm, type GcpKmsSettings, type GcpPurpose } from './gcp-settings';

/** Our retries, not the library's (see retry.ts). */
const NO_GAX_RETRY = { retry: null };

export function gcpKmsClient(s: GcpKmsSettings): KeyManagementServiceClient {
  return new KeyManagementServiceClient({
    ...gcpAuthOptions(s.credentials),
    ...(s.endpoint ? { apiEndpoint: s.endpoint.host, port: s.endpoint.port, protocol: s.endpoint.protocol, fallback: true } : {}),
  });
}

const V1 = protos.google.cloud.kms.v1;

/** The REST fallback asks for integer enums (`enum-encoding=int`): name them by the proto's table. */
function enumName(table: Record<number, string>, v: unknown): string {
  if (typeof v === 'number') return table[v] ?? String(v);
  return v === null || v === undefined ? '' : String(v);
}
const versionState = (v: unknown): string => enumName(V1.CryptoKeyVersion.CryptoKeyVersionState as unknown as Record<number, string>, v);
const jobState = (v: unknown): string => enumName(V1.ImportJob.ImportJobState as unknown as Record<number, string>, v);

/**
 * BYOK into Google Cloud KMS: an ImportJob (kept while ACTIVE, they live 3
 * days) gives the wrapping key; the material goes in with
 * ImportCryptoKeyVersion into an import-only CryptoKey (one per Keyhub key
 * version), and the import finishes asynchronously: the version is polled
 * from PENDING_IMPORT until ENABLED, or IMPORT_FAILED (CLOUD_MATERIAL_REJECTED).
 */
export class GcpKmsImporter implements CloudImporter {
  readonly cloud = 'gcp' as const;
  private job?: { name: string; spki: Buffer; expires: number };

  constructor(
    private readonly client: KeyManagementServiceClient,
    private readonly settings: GcpKmsSettings,
    private readonly hsmWrap: HsmWrapOptions = SOFTHSM2_WRAP_OPTIONS,
  ) {}

  async importKey(req: CloudImportRequest): Promise<CloudImportResult> {
    try {
      const { algorithm, purpose } = gcpAlgorithm(req.algorithm);
      const wrap = gcpWrap(this.settings.importMethod);
      const keyName = await this.ensureCryptoKey(gcpCryptoKeyId(req.keyName, req.version), algorithm, purpose);
      const present = await this.enabledVersion(keyName);
      let attempt = 0;
      for (;;) {
        const job = await this.activeJob(attempt > 0);
        const wrapped = await wrapMaterial(req.material, req.algorithm, job.spki, wrap, this.hsmWrap, true);
        if (present) return this.result(keyName, present, 'ENABLED', wrapped.kcv);
        try {
          const [version] = await this.call('ImportCryptoKeyVersion', () =>
            this.client.importCryptoKeyVersion({ parent: keyName, algorithm, importJob: job.name, wrappedKey: wrapped.blob }, NO_GAX_RETRY),
          );
          const state = await this.awaitImport(String(version.name));
          return this.result(keyName, String(version.name), state, wrapped.kcv);
        } catch (err) {
          // One fresh import job after an expired one, as with AWS import tokens.
          if (!KeyhubError.is(err, 'CLOUD_IMPORT_TOKEN_EXPIRED') || attempt++ > 0) throw err;
        }
      }
    } finally {
      if (req.material.source === 'bytes') req.material.bytes.fill(0);
    }
  }

  async disable(ref: CloudKeyRef): Promise<void> {
    const name = `${this.cryptoKeyName(ref)}/cryptoKeyVersions/1`;
    await this.call('UpdateCryptoKeyVersion', () => this.client.updateCryptoKeyVersion({ cryptoKeyVersion: { name, state: 'DISABLED' }, updateMask: { paths: ['state'] } }, NO_GAX_RETRY));
  }

  /** Schedules destruction of the version (Cloud KMS keeps it DESTROY_SCHEDULED for the key's configured duration); idempotent. */
  async destroy(ref: CloudKeyRef): Promise<void> {
    const name = `${this.cryptoKeyName(ref)}/cryptoKeyVersions/1`;
    try {
      await this.call('DestroyCryptoKeyVersion', () => this.client.destroyCryptoKeyVersion({ name }, NO_GAX_RETRY));
    } catch (err) {
      // NOT_FOUND (never imported) and FAILED_PRECONDITION (already destroyed or scheduled) leave nothing to do.
      const status = KeyhubError.is(err) ? err.details?.gcpStatus : undefined;
      if (status !== 'NOT_FOUND' && status !== 'FAILED_PRECONDITION') throw err;
    }
  }

  private cryptoKeyName(ref: CloudKeyRef): string {
    return `${this.settings.keyRing}/cryptoKeys/${gcpCryptoKeyId(ref.keyName, ref.version)}`;
  }

  private result(keyName: string, versionName: string, state: string, kcv: string): CloudImportResult {
    return { cloudKeyId: keyName, cloudVersionId: versionName, importState: state, kcv, wrapping: this.settings.importMethod };
  }

  private async ensureCryptoKey(id: string, algorithm: GcpAlgorithm, purpose: GcpPurpose): Promise<string> {
    const name = `${this.settings.keyRing}/cryptoKeys/${id}`;
    try {
      await this.call('GetCryptoKey', () => this.client.getCryptoKey({ name }, NO_GAX_RETRY));
      return name;
    } catch (err) {
      if (!(KeyhubError.is(err) && err.details?.gcpStatus === 'NOT_FOUND')) throw err;
    }
    await this.call('CreateCryptoKey', () =>
      this.client.createCryptoKey(
        {
          parent: this.settings.keyRing,
          cryptoKeyId: id,
          skipInitialVersionCreation: true,
          cryptoKey: { purpose, importOnly: true, versionTemplate: { algorithm, protectionLevel: this.settings.protectionLevel }, labels: { 'managed-by': 'keyhub' } },
        },
        NO_GAX_RETRY,
      ),
    );
    return name;
  }

  /** An already ENABLED version (the import was done before): the import is then idempotent. */
  private async enabledVersion(keyName: string): Promise<string | undefined> {
    try {
      const [v] = await this.call('GetCryptoKeyVersion', () => this.client.getCryptoKeyVersion({ name: `${keyName}/cryptoKeyVersions/1` }, NO_GAX_RETRY));
      return versionState(v.state) === 'ENABLED' ? String(v.name) : undefined;
    } catch (err) {
      if (KeyhubError.is(err) && err.details?.gcpStatus === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  private async activeJob(fresh: boolean): Promise<{ name: string; spki: Buffer }> {
    if (!fresh && this.job && this.job.expires > Date.now() + 60_000) return this.job;
    const s = this.settings;
    const [created] = await this.call('CreateImportJob', () =>
      this.client.createImportJob(
        { parent: s.keyRing, importJobId: `keyhub-${Date.now().toString(36)}`, importJob: { importMethod: s.importMethod, protectionLevel: s.protectionLevel } },
        NO_GAX_RETRY,
      ),
    );
    const name = String(created.name);
    const job = await this.poll('GetImportJob', async () => {
      const [j] = await this.client.getImportJob({ name }, NO_GAX_RETRY);
      return jobState(j.state) === 'PENDING_GENERATION' ? undefined : j;
    });
    if (jobState(job.state) !== 'ACTIVE' || !job.publicKey?.pem) throw new KeyhubError('CLOUD_IMPORT_TOKEN_EXPIRED', 'the import job is not ACTIVE', { details: { state: jobState(job.state) } });
    const spki = createPublicKey(job.publicKey.pem).export({ format: 'der', type: 'spki' });
    const expires = job.expireTime?.seconds ? Number(job.expireTime.seconds) * 1000 : Date.now() + 3600_000;
    this.job = { name, spki, expires };
    return this.job;
  }

  private async awaitImport(versionName: string): Promise<string> {
    const v = await this.poll('GetCryptoKeyVersion', async () => {
      const [cur] = await this.client.getCryptoKeyVersion({ name: versionName }, NO_GAX_RETRY);
      return versionState(cur.state) === 'PENDING_IMPORT' ? undefined : cur;
    });
    const state = versionState(v.state);
    if (state === 'IMPORT_FAILED') throw new KeyhubError('CLOUD_MATERIAL_REJECTED', 'Google Cloud KMS could not import the key material', { details: { state } });
    return state;
  }

  /** Calls `probe` until it returns something, with the retry policy around each call and a deadline around all. */
  private async poll<T>(operation: string, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + this.settings.pollTimeoutMs;
    for (;;) {
      const got = await this.call(operation, probe);
      if (got !== undefined) return got;
      if (Date.now() > deadline) throw new KeyhubError('CLOUD_UNAVAILABLE', `Google Cloud KMS ${operation}: still pending at the deadline`, { details: { operation } });
      await sleep(this.settings.pollIntervalMs);
    }
  }

  private call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return withRetry(() => fn().catch((err: unknown) => Promise.reject(gcpError(err, operation))), this.settings.retry);
  }
}
