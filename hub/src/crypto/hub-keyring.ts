import { createHash } from 'node:crypto';
import { batchLeaf, batchStatement, buildMerkleBatch, MAX_BATCH_SIZE, publicKeyFingerprint, signingDigest, type Message, type SignedEnvelope } from '@keyhub/protocol';
import {
  HUB_KEK_STORE_POLICY,
  HUB_KEY_STORE_POLICY,
  HUB_PRIVATE_STORE_POLICY,
  HUB_SECRET_STORE_POLICY,
  KeyhubError,
  TRANSIENT_KEK_POLICY,
  type Hsm,
  type KeyHandle,
  type WrappedAesKey,
  type WrappedKeyType,
} from '@keyhub/shared';

export const HMK_LABEL = 'keyhub-hmk';
export const HMK_KEK_LABEL = 'keyhub-hmk-kek';
/** Master key of TDES, HMAC and generic secret key versions (any secret key type but the AES of `keyhub-hmk`). */
export const HMK_SECRET_LABEL = 'keyhub-hmk-secret';
/** Master key of private key versions (RSA, EC): only CKO_PRIVATE_KEY comes out of it. */
export const HMK_PRIVATE_LABEL = 'keyhub-hmk-private';
export const ROW_MAC_LABEL = 'keyhub-row-mac';
/** HMAC-SHA256, sign only: derives the parts of a root KEK set up by key components (operations/listeners/root-kek-ceremony-parts.ts). */
export const CEREMONY_LABEL = 'keyhub-ceremony';
export const SIGNING_LABEL = 'keyhub-signing';
/** Present once the rows that predate row MACs have been given theirs (backfill-row-macs.ts): no backfill after that. */
export const ROW_MAC_BACKFILLED_LABEL = 'keyhub-row-mac-backfilled';

/**
 * The hub's long-lived token objects: two master keys (AES-256, wrap/unwrap
 * only, never extractable, not modifiable, not copyable, AES-KWP only), one
 * per class of what they store: `keyhub-hmk` every managed key version,
 * `keyhub-hmk-kek` every root KEK; their CKA_UNWRAP_TEMPLATEs fix what comes
 * out of an unwrap (shared/src/hsm/key-classes.ts). The key store's template
 * fixes CKK_AES, so the other key types have master keys of their own:
 * `keyhub-hmk-secret` (TDES, HMAC, generic secrets) and `keyhub-hmk-private`
 * (RSA and EC private keys, PKCS#8 inside the blob); each unwraps only
 * sensitive objects of its class with no usage, AES-KWP only. A hub
 * initialized before them keeps working for AES keys; `keyhub-server init`
 * adds them (NOT_INITIALIZED until then for other key types). `keyhub-row-mac`
 * (HMAC-SHA256, sign/verify only) binds each stored row to what it is
 * (row-mac.ts). And the EC P-256 hub signing key.
 *
 * The master keys are used as token objects. Until they were made
 * non-copyable the keyring worked through a session copy, because SoftHSM2
 * re-checks a token object on every use: measured here (sync, 4,000 unwraps
 * into session objects and destroys), 34-37 µs per unwrap through a session
 * copy, 44-46 µs through the token object, 50-51 µs through the token object
 * with its unwrap template and allowed mechanisms; the fan-out figures with
 * the token object are in test/src/bench/RESULTS.md.
 */
export class HubKeyring {
  readonly fingerprint: string;

  private constructor(
    readonly hsm: Hsm,
    private readonly keyStore: KeyHandle,
    private readonly kekStore: KeyHandle,
    private readonly rowMacKey: KeyHandle,
    private readonly signingKey: KeyHandle,
    readonly signingSpki: Buffer,
    private readonly secretStore?: KeyHandle,
    private readonly privateStore?: KeyHandle,
    private readonly ceremonyKey?: KeyHandle,
  ) {
    this.fingerprint = publicKeyFingerprint(signingSpki);
  }

  /** Opens the existing keys; NOT_INITIALIZED when `keyhub init` has not run on this token (or not since this version). */
  static async load(hsm: Hsm): Promise<HubKeyring> {
    const found = await HubKeyring.find(hsm);
    if (!found) throw new KeyhubError('NOT_INITIALIZED', `token "${hsm.tokenLabel}" lacks some hub keys: run \`keyhub-server init\``);
    return found;
  }

  /** Creates whichever of the keys is missing; returns what was created. */
  static async ensure(hsm: Hsm): Promise<{ keyring: HubKeyring; created: string[] }> {
    const created: string[] = [];
    const id = (label: string) => Buffer.from(label, 'utf8');
    const missing = async (cls: 'secret' | 'private', label: string) => (await hsm.findKeys({ class: cls, label, token: true })).length === 0;
    if (await missing('secret', HMK_LABEL)) {
      await hsm.generateAesKey(32, { ...HUB_KEY_STORE_POLICY, label: HMK_LABEL, id: id(HMK_LABEL) });
      created.push(HMK_LABEL);
    }
    if (await missing('secret', HMK_KEK_LABEL)) {
      await hsm.generateAesKey(32, { ...HUB_KEK_STORE_POLICY, label: HMK_KEK_LABEL, id: id(HMK_KEK_LABEL) });
      created.push(HMK_KEK_LABEL);
    }
    if (await missing('secret', HMK_SECRET_LABEL)) {
      await hsm.generateAesKey(32, { ...HUB_SECRET_STORE_POLICY, label: HMK_SECRET_LABEL, id: id(HMK_SECRET_LABEL) });
      created.push(HMK_SECRET_LABEL);
    }
    if (await missing('secret', HMK_PRIVATE_LABEL)) {
      await hsm.generateAesKey(32, { ...HUB_PRIVATE_STORE_POLICY, label: HMK_PRIVATE_LABEL, id: id(HMK_PRIVATE_LABEL) });
      created.push(HMK_PRIVATE_LABEL);
    }
    if (await missing('secret', ROW_MAC_LABEL)) {
      await hsm.generateHmacKey(32, { token: true, label: ROW_MAC_LABEL, id: id(ROW_MAC_LABEL), sensitive: true, extractable: false, modifiable: false, copyable: false });
      created.push(ROW_MAC_LABEL);
    }
    if (await missing('secret', CEREMONY_LABEL)) {
      await hsm.generateHmacKey(32, { token: true, label: CEREMONY_LABEL, id: id(CEREMONY_LABEL), sensitive: true, extractable: false, modifiable: false, copyable: false });
      created.push(CEREMONY_LABEL);
    }
    if (await missing('private', SIGNING_LABEL)) {
      await hsm.generateEcP256KeyPair({ token: true, label: SIGNING_LABEL, id: id(SIGNING_LABEL) });
      created.push(SIGNING_LABEL);
    }
    return { keyring: await HubKeyring.load(hsm), created };
  }

  private static async find(hsm: Hsm): Promise<HubKeyring | undefined> {
    const one = async (cls: 'secret' | 'private' | 'public', label: string) => (await hsm.findKeys({ class: cls, label, token: true }))[0];
    const [hmk, hmkKek, rowMac, priv, pub] = [
      await one('secret', HMK_LABEL),
      await one('secret', HMK_KEK_LABEL),
      await one('secret', ROW_MAC_LABEL),
      await one('private', SIGNING_LABEL),
      await one('public', SIGNING_LABEL),
    ];
    if (!hmk || !hmkKek || !rowMac || !priv || !pub) return undefined;
    const [secretStore, privateStore, ceremonyKey] = [await one('secret', HMK_SECRET_LABEL), await one('secret', HMK_PRIVATE_LABEL), await one('secret', CEREMONY_LABEL)];
    return new HubKeyring(hsm, hmk, hmkKek, rowMac, priv, await hsm.publicKeySpki(pub), secretStore, privateStore, ceremonyKey);
  }

  /** Whether the rows that predate row MACs were backfilled (a token object, so the database cannot reset it). */
  async rowMacsBackfilled(): Promise<boolean> {
    return (await this.hsm.findKeys({ class: 'secret', label: ROW_MAC_BACKFILLED_LABEL, token: true })).length > 0;
  }

  /** Records in the token that the backfill is done: a key of no use at all, only its label counts. */
  async markRowMacsBackfilled(): Promise<void> {
    if (await this.rowMacsBackfilled()) return;
    await this.hsm.generateAesKey(16, { token: true, label: ROW_MAC_BACKFILLED_LABEL, id: Buffer.from(ROW_MAC_BACKFILLED_LABEL), modifiable: false, copyable: false });
  }

  async sign<M extends Message>(payload: M): Promise<SignedEnvelope<M>> {
    const value = await this.hsm.signDigestEcdsa(this.signingKey, signingDigest(payload));
    return { payload, signature: { alg: 'ES256', keyId: this.fingerprint, value: value.toString('base64') } };
  }

  /**
   * Signs many payloads with one HSM signature over the Merkle root of their
   * canonical bytes (ES256-MERKLE); each envelope carries its own audit path.
   * A single payload gets a plain ES256 signature. Order is kept.
   */
  async signBatch<M extends Message>(payloads: M[]): Promise<Array<SignedEnvelope<M>>> {
    if (payloads.length <= 1) return Promise.all(payloads.map((p) => this.sign(p)));
    const out: Array<SignedEnvelope<M>> = [];
    for (let i = 0; i < payloads.length; i += MAX_BATCH_SIZE) {
      const chunk = payloads.slice(i, i + MAX_BATCH_SIZE);
      if (chunk.length === 1) {
        out.push(await this.sign(chunk[0]));
        continue;
      }
      const { root, paths } = buildMerkleBatch(chunk.map((p) => batchLeaf(p)));
      const value = (await this.signBytes(batchStatement(root, chunk.length))).toString('base64');
      chunk.forEach((payload, index) =>
        out.push({
          payload,
          signature: { alg: 'ES256-MERKLE', keyId: this.fingerprint, value, batch: { size: chunk.length, index, path: paths[index].map((h) => h.toString('base64')) } },
        }),
      );
    }
    return out;
  }

  async signBytes(data: Buffer): Promise<Buffer> {
    return this.hsm.signDigestEcdsa(this.signingKey, createHash('sha256').update(data).digest());
  }

  /** A new key version's blob, under the master key of its type: `keyhub-hmk` (AES), `keyhub-hmk-secret`, `keyhub-hmk-private` (rsa, ec: the private key). */
  async wrapKeyVersion(key: KeyHandle, keyType: WrappedKeyType = 'aes'): Promise<Buffer> {
    return this.hsm.wrapKwp(this.storeFor(keyType), key);
  }

  private storeFor(keyType: WrappedKeyType): KeyHandle {
    if (keyType === 'aes') return this.keyStore;
    const [store, label] = keyType === 'rsa' || keyType === 'ec' ? [this.privateStore, HMK_PRIVATE_LABEL] : [this.secretStore, HMK_SECRET_LABEL];
    if (!store) throw new KeyhubError('NOT_INITIALIZED', `token "${this.hsm.tokenLabel}" lacks ${label} (needed for ${keyType} keys): run \`keyhub-server init\``);
    return store;
  }

  /**
   * One 32-byte value of a key-component ceremony: HMAC-SHA256 in the token
   * under `keyhub-ceremony` over `label`, which names the ceremony, its
   * random nonce and the value's role. Clear by nature (a custodian reads
   * it); derivable only while the nonce is kept. The caller wipes it.
   */
  async deriveCeremonyValue(label: Buffer): Promise<Buffer> {
    if (!this.ceremonyKey) throw new KeyhubError('NOT_INITIALIZED', `token "${this.hsm.tokenLabel}" lacks ${CEREMONY_LABEL} (needed for root KEK ceremonies): run \`keyhub-server init\``);
    return this.hsm.hmacSha256(this.ceremonyKey, label);
  }

  /** A new root KEK's blob, under the KEK store (`keyhub-hmk-kek`). */
  async wrapRootKek(kek: KeyHandle): Promise<Buffer> {
    return this.hsm.wrapKwp(this.kekStore, kek);
  }

  /**
   * Root KEK rotation: the site's next root KEK wrapped (AES-KWP) under its
   * current one. The current one's row MAC is checked in the token first
   * (ROW_MAC_INVALID, nothing unwrapped); it is unwrapped from the KEK store
   * as the transient KEK class (wrap only) and destroyed before this returns.
   */
  async wrapUnderRootKek(current: { blob: Buffer; mac: { data: Buffer; tag: Buffer } }, next: KeyHandle): Promise<Buffer> {
    if (!(await this.verifyRow(current.mac.data, current.mac.tag))) throw new KeyhubError('ROW_MAC_INVALID', 'the current root KEK row does not match its MAC: not unwrapped');
    const kek = await this.hsm.unwrapKwp(this.kekStore, current.blob, 32, TRANSIENT_KEK_POLICY);
    try {
      return await this.hsm.wrapKwp(kek, next);
    } finally {
      await this.hsm.destroy(kek);
    }
  }

  /** The row MAC (HMAC-SHA256 in the token) over what row-mac.ts encodes of a row. */
  async macRow(data: Buffer): Promise<Buffer> {
    return this.hsm.hmacSha256(this.rowMacKey, data);
  }

  async verifyRow(data: Buffer, tag: Buffer): Promise<boolean> {
    return this.hsm.verifyHmacSha256(this.rowMacKey, data, tag);
  }

  /**
   * A KEK row stored before the KEK store existed, under the key store of a
   * hub initialized before templates (which therefore unwraps anything):
   * moved under the KEK store. Used by the one-time backfill only.
   */
  async rewrapLegacyKek(blob: Buffer): Promise<Buffer> {
    const kek = await this.hsm.unwrapKwp(this.keyStore, blob, 32, { token: false, private: false, extractable: true });
    try {
      return await this.wrapRootKek(kek);
    } finally {
      await this.hsm.destroy(kek);
    }
  }

  /**
   * Re-wraps stored keys under stored KEKs: output i is keys[pairs[2i+1]]
   * under keks[pairs[2i]]. Every blob must carry its row MAC: all are
   * verified in the token first (ROW_MAC_INVALID, nothing unwrapped), then
   * each is unwrapped once for the call and destroyed before it returns.
   */
  async translate(keks: WrappedAesKey[], keys: WrappedAesKey[], pairs: Uint32Array): Promise<Buffer[]> {
    for (const k of keys) if (k.keyType && k.keyType !== 'aes') this.storeFor(k.keyType);
    return this.hsm.translateKwp({
      unwrappingKey: this.keyStore,
      kekUnwrappingKey: this.kekStore,
      ...(this.secretStore ? { secretUnwrappingKey: this.secretStore } : {}),
      ...(this.privateStore ? { privateUnwrappingKey: this.privateStore } : {}),
      macKey: this.rowMacKey,
      keks,
      keys,
      pairs,
    });
  }
}
