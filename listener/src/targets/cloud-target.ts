import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { storableText, type KeyUsage } from '@keyhub/protocol';
import { KeyhubError, type Logger, KeyedLock } from '@keyhub/shared';
import type { HsmWrapOptions } from './cloud/byok/hsm-wrap';
import type { ByokMaterial, CloudImporter, CloudImportResult } from './cloud/importer';
import { algorithmInfo } from './pkcs11-key-types';
import type { ImportRequest, ImportResult, InventoryItem, KeyRef, LifecycleEffect, Target, TargetHealth } from './target';
import { TransitExporter, unwrapChecked } from './transit-import';
import type { TransitKeys } from './transit-keys';

export type CloudTargetKind = 'aws-kms' | 'azure-kv' | 'gcp-kms';

export interface CloudTargetSettings {
  /**
   * The OAEP hash of the cloud's wrap for this target, or `clear` for a JWK
   * import (Azure vaults that are not HSM-backed). With a hash this token
   * does (hsmWrap.oaepHashes), a secret key is re-wrapped INSIDE the token
   * and its clear bytes never exist outside it; otherwise (SHA-256 on
   * SoftHSM2, key pairs whose PKCS#8 SoftHSM2 would pad, JWK) they are read
   * out and wrapped in memory, wiped after.
   */
  wrapHash: 'sha1' | 'sha256' | 'clear';
  hsmWrap: HsmWrapOptions;
  /** What the target knows it imported (ids, state, KCV), by key id and version: a JSON file in the listener home, nothing secret in it. */
  indexPath: string;
  /** A call that proves the endpoint answers and takes the credentials (health). */
  probe: () => Promise<void>;
  logger?: Pick<Logger, 'info' | 'warn'>;
  onWiped?: (wiped: readonly Buffer[]) => void;
}

/** What the index keeps of one imported version: what a cloud receipt would carry. */
export interface CloudImportRecord extends CloudImportResult {
  keyName: string;
  algorithm: string;
  disabled?: boolean;
  destroyed?: boolean;
}

/**
 * A cloud KMS (AWS KMS, Azure Key Vault / Managed HSM, Google Cloud KMS) as a
 * target, through its importer (listener/src/targets/cloud). A package is
 * unwrapped under this target's transit KEK as a session object in the
 * listener's token and its KCV checked there before the cloud sees anything
 * (transit-import.ts); then it is re-wrapped for the cloud's wrapping key in
 * the token where the token can (RSA-OAEP SHA-1 + AES-KWP, SoftHSM2's
 * profile), else read out and wrapped in memory.
 *
 * The receipt's KCV is the one the importer computed over exactly the
 * material it wrapped (or, for the in-token wrap, the one the token
 * computed), and it must equal the package's. The cloud's key and version
 * ids, its import state and the wrapping used are kept in the target's index
 * (inventory) and logged with the delivery; a JWK import is logged at warn,
 * naming it a clear import.
 *
 * Idempotence: a version the index holds with the same KCV is
 * `already_present`, after the importer confirmed it at the cloud (each
 * importer finds an earlier import of the same version: the alias, the
 * version tag, the enabled version).
 *
 * Lifecycle, as the clouds offer it:
 * - suspend and deactivate DISABLE the cloud key version (effect
 *   `usages_off`: a cloud key cannot be made "decrypt only", so deactivate
 *   stops every use);
 * - resume is not carried out here (COMMAND_NOT_APPLICABLE): re-enabling a
 *   key in a cloud is its administrator's step;
 * - compromise and destroy delete the imported material (AWS), disable and
 *   tag the version destroyed (Azure), or schedule the version's destruction
 *   (Google): effect `destroyed`.
 */
export class CloudTarget implements Target {
  private index?: Map<string, CloudImportRecord>;
  private readonly locks = new KeyedLock();
  private readonly exporter: TransitExporter;

  constructor(
    readonly name: string,
    readonly kind: CloudTargetKind,
    private readonly keys: TransitKeys,
    private readonly importer: CloudImporter,
    private readonly settings: CloudTargetSettings,
  ) {
    this.exporter = new TransitExporter(settings.onWiped);
  }

  import(req: ImportRequest): Promise<ImportResult> {
    return this.serialized({ keyId: req.key.id, version: req.key.version }, async () => {
      try {
        const r = await this.importOnce(req);
        this.lastHealth = { at: Date.now(), health: { healthy: true } };
        return r;
      } catch (err) {
        // An import that found the cloud down says so sooner than the next probe would.
        if (KeyhubError.is(err, 'CLOUD_UNAVAILABLE')) this.lastHealth = { at: Date.now(), health: { healthy: false, detail: 'CLOUD_UNAVAILABLE' } };
        throw err;
      }
    });
  }

  private async importOnce(req: ImportRequest): Promise<ImportResult> {
    const hsm = this.keys.hsm;
    const handle = await unwrapChecked(this.keys, req, this.kind);
    let result: CloudImportResult;
    try {
      const material = await this.material(handle, req);
      result = await this.importer.importKey({
        material,
        algorithm: req.key.algorithm,
        keyName: req.key.name,
        version: req.key.version,
        allowClearImport: req.key.allowClearImport === true,
      });
    } finally {
      await hsm.destroy(handle).catch(() => undefined);
    }
    if (result.kcv !== req.key.kcv) throw new KeyhubError('KCV_MISMATCH', `KCV of the material sent to ${this.name} ${result.kcv} differs from expected ${req.key.kcv}`);
    const index = await this.loadIndex();
    const ref = refKey({ keyId: req.key.id, version: req.key.version });
    const before = index.get(ref);
    const outcome = before && before.kcv === result.kcv && !before.destroyed ? 'already_present' : 'imported';
    index.set(ref, { ...result, keyName: req.key.name, algorithm: req.key.algorithm });
    await this.saveIndex();
    const fields = {
      target: this.name,
      key: req.key.name,
      version: req.key.version,
      cloudKeyId: result.cloudKeyId,
      cloudVersionId: result.cloudVersionId,
      importState: result.importState,
      wrapping: result.wrapping,
    };
    if (result.clearImport) this.settings.logger?.warn({ ...fields, clearImport: true }, "key imported in clear inside TLS (JWK), as the key's policy allows");
    else this.settings.logger?.info(fields, 'key imported into the cloud');
    // For the receipt (protocol receipts.ts): bounded and storable, whatever the cloud answered.
    const cloud = {
      keyId: storableText(result.cloudKeyId, 1000),
      versionId: storableText(result.cloudVersionId, 1000),
      importState: storableText(result.importState, 64),
      wrapping: storableText(result.wrapping, 64),
    };
    return { outcome, kcv: result.kcv, cloud };
  }

  /** The key for the importer: the token object where the token can do the cloud's wrap, else its bytes (wiped by the importer). */
  private async material(handle: Buffer, req: ImportRequest): Promise<ByokMaterial> {
    const info = algorithmInfo(req);
    const { wrapHash, hsmWrap } = this.settings;
    const inToken = wrapHash !== 'clear' && info.keyClass === 'secret' && hsmWrap.oaepHashes.includes(wrapHash) && (!hsmWrap.kwpPadsToBlock || req.key.length % 8 === 0);
    if (inToken) return { source: 'hsm', hsm: this.keys.hsm, handle, lengthBytes: req.key.length, kcv: req.key.kcv };
    return { source: 'bytes', bytes: await this.exporter.export(this.keys.hsm, handle, req) };
  }

  async disable(ref: KeyRef): Promise<boolean> {
    return (await this.withRecord(ref, async (r) => (await this.importer.disable({ keyName: r.keyName, version: ref.version }), (r.disabled = true), 'usages_off'))) !== 'absent';
  }

  async destroy(ref: KeyRef): Promise<boolean> {
    return (await this.serialized(ref, () => this.destroyOnce(ref))) === 'destroyed';
  }

  private async destroyOnce(ref: KeyRef): Promise<LifecycleEffect> {
    const index = await this.loadIndex();
    const r = index.get(refKey(ref));
    if (!r || r.destroyed) return 'absent';
    await this.importer.destroy({ keyName: r.keyName, version: ref.version });
    index.delete(refKey(ref));
    await this.saveIndex();
    return 'destroyed';
  }

  suspend(ref: KeyRef): Promise<LifecycleEffect> {
    return this.serialized(ref, () => this.withRecord(ref, async (r) => (await this.importer.disable({ keyName: r.keyName, version: ref.version }), (r.disabled = true), 'usages_off')));
  }

  async resume(ref: KeyRef, _usages: KeyUsage[]): Promise<LifecycleEffect> {
    const r = (await this.loadIndex()).get(refKey(ref));
    if (!r) return 'absent';
    throw new KeyhubError('COMMAND_NOT_APPLICABLE', `${this.name} does not re-enable cloud keys: the cloud's administrator enables ${r.cloudKeyId} again`);
  }

  deactivate(ref: KeyRef, _usages: KeyUsage[]): Promise<LifecycleEffect> {
    return this.suspend(ref);
  }

  compromise(ref: KeyRef): Promise<LifecycleEffect> {
    return this.serialized(ref, () => this.destroyOnce(ref));
  }

  private async withRecord(ref: KeyRef, fn: (r: CloudImportRecord) => Promise<LifecycleEffect>): Promise<LifecycleEffect> {
    const r = (await this.loadIndex()).get(refKey(ref));
    if (!r || r.destroyed) return 'absent';
    const effect = await fn(r);
    await this.saveIndex();
    return effect;
  }

  async inventory(): Promise<InventoryItem[]> {
    const index = await this.loadIndex();
    return [...index].map(([k, r]) => {
      const [keyId, version] = k.split('/');
      return { keyId, version: Number(version), label: `${r.cloudKeyId}#${r.cloudVersionId}`, algorithm: r.algorithm, enabled: !r.disabled, kcv: r.kcv };
    });
  }

  /**
   * One read call with the configured credentials. Heartbeats ask every few
   * seconds: an answer (or what the last import found) is kept HEALTH_CACHE_MS, and a cloud that does not
   * answer within HEALTH_TIMEOUT_MS is CLOUD_UNAVAILABLE, so a hanging
   * endpoint never holds a heartbeat back.
   */
  async health(): Promise<TargetHealth> {
    const cached = this.lastHealth;
    if (cached && Date.now() - cached.at < HEALTH_CACHE_MS) return cached.health;
    this.checking ??= this.probeOnce().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private lastHealth?: { at: number; health: TargetHealth };
  private checking?: Promise<TargetHealth>;

  private async probeOnce(): Promise<TargetHealth> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KeyhubError('CLOUD_UNAVAILABLE', `${this.name} did not answer within ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
    });
    let health: TargetHealth;
    try {
      await Promise.race([this.settings.probe(), timeout]);
      health = { healthy: true };
    } catch (err) {
      health = { healthy: false, detail: KeyhubError.from(err).code };
    } finally {
      clearTimeout(timer);
    }
    this.lastHealth = { at: Date.now(), health };
    return health;
  }

  /** The imports this target knows of (ids, state, wrapping, KCV), by key id and version. */
  async records(): Promise<Map<string, CloudImportRecord>> {
    return new Map(await this.loadIndex());
  }

  private async loadIndex(): Promise<Map<string, CloudImportRecord>> {
    if (this.index) return this.index;
    const index = new Map<string, CloudImportRecord>();
    try {
      const raw = JSON.parse(await fs.readFile(this.settings.indexPath, 'utf8')) as Record<string, CloudImportRecord>;
      for (const [k, v] of Object.entries(raw)) index.set(k, v);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw new KeyhubError('INTERNAL', `the index of target ${this.name} cannot be read`, { cause: err });
    }
    this.index = index;
    return index;
  }

  private async saveIndex(): Promise<void> {
    const file = this.settings.indexPath;
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await fs.open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o600);
    try {
      await handle.writeFile(JSON.stringify(Object.fromEntries(this.index ?? [])));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  }

  private serialized<T>(ref: KeyRef, work: () => Promise<T>): Promise<T> {
    return this.locks.run(refKey(ref), work);
  }
}

export const refKey = (ref: KeyRef): string => `${ref.keyId}/${ref.version}`;

const HEALTH_CACHE_MS = 15_000;
const HEALTH_TIMEOUT_MS = 5_000;
