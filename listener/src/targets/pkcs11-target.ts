import { assertUsagesCompatible, KeyhubError, type Hsm, type KeyHandle, KeyedLock } from '@keyhub/shared';
import { invalidUsages } from '@keyhub/protocol';
import { checkExistingObject } from './pkcs11-object-check';
import { ensurePublicKey, importIntoToken, objectClass, probePolicy, algorithmInfo, targetKcv, unwrapAs } from './pkcs11-key-types';
import type { ListenerKeys } from '../listener-keys';
import type { KeyUsage } from '@keyhub/protocol';
import { applyLifecycle, type LifecycleAction } from './pkcs11-lifecycle';
import type { ImportRequest, ImportResult, InventoryItem, KeyRef, LifecycleEffect, Target, TargetHealth } from './target';

/** CKA_ID of an imported key: the 16 bytes of the key's UUID followed by the version, big-endian. */
export function objectId(ref: KeyRef): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(ref.version);
  return Buffer.concat([Buffer.from(ref.keyId.replace(/-/g, ''), 'hex'), v]);
}

/** The inverse of objectId; undefined for a CKA_ID not of that shape. */
export function refFromId(id: Buffer): KeyRef | undefined {
  if (id.length !== 20) return undefined;
  const hex = id.subarray(0, 16).toString('hex');
  return { keyId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`, version: id.readUInt32BE(16) };
}

/**
 * A PKCS#11 token as target: the key is unwrapped under the root KEK straight
 * into the token and is never in clear outside it. The KCV is computed in the
 * token on a session copy (unwrapped from the same blob with CKA_SIGN), so
 * the stored object keeps exactly the usages its policy grants, and a key
 * whose KCV does not match never reaches the token.
 */
export class Pkcs11Target implements Target {
  readonly kind = 'pkcs11';
  /**
   * CKA_IDs of the keys we imported, read from the token once. A token
   * search scans every object (SoftHSM has no index), so a per-import search
   * would make catching up on N keys cost O(N^2); a hit is still confirmed
   * in the token before it is reported as already present.
   */
  private imported?: Set<string>;
  private indexLoading?: Promise<Set<string>>;
  /** Imports of the same key version are serialized, so concurrent copies never create two objects. */
  private readonly locks = new KeyedLock();

  constructor(
    readonly name: string,
    private readonly hsm: Hsm,
    private readonly keys: ListenerKeys,
    private readonly labelPrefix: string,
  ) {}

  async import(req: ImportRequest): Promise<ImportResult> {
    return this.serialized({ keyId: req.key.id, version: req.key.version }, () => this.importOnce(req));
  }

  private async importOnce(req: ImportRequest): Promise<ImportResult> {
    // The hub refuses these at key creation; a package carrying them never reaches the token either.
    assertUsagesCompatible(req.key.usages);
    const wrongForType = invalidUsages(req.key.algorithm, req.key.usages);
    if (wrongForType.length) throw new KeyhubError('KEY_USAGE_INVALID', `an ${req.key.algorithm} key cannot have usage ${wrongForType.join(', ')}`);
    const kek = await this.keys.findKek(req.wrapped.kekId, req.wrapped.kekVersion);
    if (!kek) throw new KeyhubError('KEK_UNKNOWN', `root KEK ${req.wrapped.kekId} v${req.wrapped.kekVersion} is not in token "${this.hsm.tokenLabel}"`);
    const ref = { keyId: req.key.id, version: req.key.version };
    const probe = await this.unwrapProbe(kek, req);
    try {
      // Per type (pkcs11-key-types.ts); for a key pair only after the probe signed for the package's public key.
      const kcv = await targetKcv(this.hsm, probe, req);
      if (kcv !== req.key.kcv) throw new KeyhubError('KCV_MISMATCH', `KCV at target ${kcv} differs from expected ${req.key.kcv}`);
      const id = objectId(ref);
      const index = await this.importedIndex();
      if (index.has(id.toString('hex'))) {
        const existing = await this.hsm.findKeys({ class: objectClass(req), id, token: true });
        if (existing.length > 0) return await this.alreadyPresent(existing, req, probe, kcv);
        index.delete(id.toString('hex'));
      }
    } finally {
      await this.hsm.destroy(probe);
    }
    const id = objectId(ref);
    const index = await this.importedIndex();
    const kcv = req.key.kcv;
    try {
      await importIntoToken(this.hsm, kek, req, id, this.label(req));
    } catch (err) {
      if (KeyhubError.is(err, 'TARGET_OBJECT_MISMATCH')) throw err;
      throw new KeyhubError('TARGET_IMPORT_FAILED', `token "${this.hsm.tokenLabel}" refused the import`, { cause: err, ckr: KeyhubError.is(err) ? err.ckr : undefined });
    }
    index.add(id.toString('hex'));
    return { outcome: 'imported', kcv };
  }

  private async importedIndex(): Promise<Set<string>> {
    if (this.imported) return this.imported;
    // One scan even when the first imports arrive together.
    this.indexLoading ??= this.inventory().then((items) => {
      this.imported = new Set(items.map((item) => objectId(item).toString('hex')));
      return this.imported;
    });
    return this.indexLoading;
  }

  private label(req: ImportRequest): string {
    return `${this.labelPrefix}${req.key.name}.v${req.key.version}`;
  }

  /**
   * The package's key as a session object of its type, to compute its KCV
   * and to compare it with an object already in the token, with the usage
   * each needs (AES: CKA_SIGN and CKA_ENCRYPT; TDES: CKA_ENCRYPT; HMAC and
   * generic: CKA_SIGN; a private key: CKA_SIGN, to prove it matches the
   * public key). Never extractable: the root KEK's unwrap template would
   * refuse anything else.
   */
  private async unwrapProbe(kek: KeyHandle, req: ImportRequest): Promise<KeyHandle> {
    try {
      return await unwrapAs(this.hsm, kek, req, probePolicy(algorithmInfo(req)));
    } catch (err) {
      if (KeyhubError.is(err, 'KEY_LENGTH_INVALID')) throw err;
      // Tokens report a tampered blob or wrong KEK variously (SoftHSM: CKR_GENERAL_ERROR); all mean integrity failure.
      throw new KeyhubError('UNWRAP_FAILED', 'wrapped key failed to unwrap under the root KEK', { cause: err, ckr: KeyhubError.is(err) ? err.ckr : undefined });
    }
  }

  /** An object with the key's CKA_ID exists: confirmed only if it is this key with this policy (pkcs11-object-check.ts). */
  private async alreadyPresent(existing: KeyHandle[], req: ImportRequest, probe: KeyHandle, kcv: string): Promise<ImportResult> {
    if (existing.length > 1) throw new KeyhubError('TARGET_OBJECT_MISMATCH', `token "${this.hsm.tokenLabel}" holds ${existing.length} objects with this key's id`);
    const check = await checkExistingObject(this.hsm, existing[0], req, probe);
    if (!check.ok) throw new KeyhubError('TARGET_OBJECT_MISMATCH', `the object with this key's id in token "${this.hsm.tokenLabel}" is not this key as delivered: ${check.reason}`);
    // A key pair's public half: made again if it went missing, refused if another one took its place.
    if (objectClass(req) === 'private') await ensurePublicKey(this.hsm, req, objectId({ keyId: req.key.id, version: req.key.version }), this.label(req));
    return { outcome: 'already_present', kcv };
  }

  async disable(ref: KeyRef): Promise<boolean> {
    // PKCS#11 has no portable "disabled" flag that survives every token; destroy is the enforceable control.
    return (await this.hsm.findKeys({ class: 'secret', id: objectId(ref), token: true })).length > 0;
  }

  async destroy(ref: KeyRef): Promise<boolean> {
    // Every class with the version's CKA_ID (a key pair's private and public halves too), after any import of it under way.
    return this.serialized(ref, async () => {
      const found = await this.hsm.findKeys({ id: objectId(ref), token: true });
      for (const h of found) await this.hsm.destroy(h);
      this.imported?.delete(objectId(ref).toString('hex'));
      return found.length > 0;
    });
  }

  /* Lifecycle commands: what each means in a token, and the fallbacks, in pkcs11-lifecycle.ts. */

  suspend(ref: KeyRef): Promise<LifecycleEffect> {
    return this.lifecycle(ref, 'suspend', []);
  }

  resume(ref: KeyRef, usages: KeyUsage[]): Promise<LifecycleEffect> {
    return this.lifecycle(ref, 'resume', usages);
  }

  deactivate(ref: KeyRef, usages: KeyUsage[]): Promise<LifecycleEffect> {
    return this.lifecycle(ref, 'deactivate', usages);
  }

  compromise(ref: KeyRef): Promise<LifecycleEffect> {
    return this.lifecycle(ref, 'compromise', []);
  }

  private lifecycle(ref: KeyRef, action: LifecycleAction, usages: KeyUsage[]): Promise<LifecycleEffect> {
    return this.serialized(ref, async () => {
      const effect = await applyLifecycle(this.hsm, await this.hsm.findKeys({ id: objectId(ref), token: true }), action, usages);
      if (effect === 'destroyed') this.imported?.delete(objectId(ref).toString('hex'));
      return effect;
    });
  }

  /** After, and before, any import of the same version (the same lock as `import`): a command never races an import. */
  private serialized<T>(ref: KeyRef, work: () => Promise<T>): Promise<T> {
    return this.locks.run(objectId(ref).toString('hex'), work);
  }

  async inventory(): Promise<InventoryItem[]> {
    const items: InventoryItem[] = [];
    // Secret keys and the private halves of key pairs (the public half shares the private key's CKA_ID: one item per version).
    const handles = [...(await this.hsm.findKeys({ class: 'secret', token: true })), ...(await this.hsm.findKeys({ class: 'private', token: true }))];
    for (const h of handles) {
      const info = await this.hsm.keyInfo(h);
      const ref = refFromId(info.id);
      if (!ref) continue;
      items.push({ ...ref, label: info.label, algorithm: info.keyType.toUpperCase(), enabled: true });
    }
    return items;
  }

  async health(): Promise<TargetHealth> {
    try {
      await this.hsm.ping();
      return { healthy: true };
    } catch (err) {
      return { healthy: false, detail: KeyhubError.from(err).code };
    }
  }
}
