import { createHash } from 'node:crypto';
import { batchLeaf, batchStatement, buildMerkleBatch, MAX_BATCH_SIZE, publicKeyFingerprint, signingDigest, type Message, type SignedEnvelope } from '@keyhub/protocol';
import { KeyhubError, type Hsm, type KeyHandle, type WrappedAesKey } from '@keyhub/shared';

export const HMK_LABEL = 'keyhub-hmk';
export const SIGNING_LABEL = 'keyhub-signing';

/**
 * The hub's two long-lived token objects: the Hub Master Key (AES-256,
 * wrap/unwrap only, never extractable) under which every managed key and root
 * KEK is stored, and the EC P-256 hub signing key.
 */
export class HubKeyring {
  readonly fingerprint: string;
  private masterCopy?: Promise<KeyHandle>;

  private constructor(
    readonly hsm: Hsm,
    private readonly masterKey: KeyHandle,
    private readonly signingKey: KeyHandle,
    readonly signingSpki: Buffer,
  ) {
    this.fingerprint = publicKeyFingerprint(signingSpki);
  }

  /** Opens the existing keys; NOT_INITIALIZED when `keyhub init` has not run on this token. */
  static async load(hsm: Hsm): Promise<HubKeyring> {
    const found = await HubKeyring.find(hsm);
    if (!found) throw new KeyhubError('NOT_INITIALIZED', `token "${hsm.tokenLabel}" holds no hub keys: run \`keyhub init\``);
    return found;
  }

  /**
   * The master key as a session object copy, for the hot path: every batch
   * unwraps its key versions and KEKs under it, and SoftHSM2 re-checks a
   * token object's file on every use (measured: ~40 µs of each ~150 µs
   * unwrap). The copy is the same non-extractable key inside the same HSM,
   * usable by this process's logged-in sessions only, and gone when they
   * close. A token that refuses the copy keeps using the token object.
   */
  private async sessionMaster(): Promise<KeyHandle> {
    this.masterCopy ??= this.hsm.copyToSession(this.masterKey).catch(() => this.masterKey);
    return this.masterCopy;
  }

  /** Creates whichever of the two keys is missing; returns whether anything was created. */
  static async ensure(hsm: Hsm): Promise<{ keyring: HubKeyring; created: string[] }> {
    const created: string[] = [];
    const id = (label: string) => Buffer.from(label, 'utf8');
    if ((await hsm.findKeys({ class: 'secret', label: HMK_LABEL, token: true })).length === 0) {
      await hsm.generateAesKey(32, { token: true, label: HMK_LABEL, id: id(HMK_LABEL), wrap: true, unwrap: true });
      created.push(HMK_LABEL);
    }
    if ((await hsm.findKeys({ class: 'private', label: SIGNING_LABEL, token: true })).length === 0) {
      await hsm.generateEcP256KeyPair({ token: true, label: SIGNING_LABEL, id: id(SIGNING_LABEL) });
      created.push(SIGNING_LABEL);
    }
    return { keyring: await HubKeyring.load(hsm), created };
  }

  private static async find(hsm: Hsm): Promise<HubKeyring | undefined> {
    const [hmk] = await hsm.findKeys({ class: 'secret', label: HMK_LABEL, token: true });
    const [priv] = await hsm.findKeys({ class: 'private', label: SIGNING_LABEL, token: true });
    const [pub] = await hsm.findKeys({ class: 'public', label: SIGNING_LABEL, token: true });
    if (!hmk || !priv || !pub) return undefined;
    return new HubKeyring(hsm, hmk, priv, await hsm.publicKeySpki(pub));
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

  async wrapUnderMaster(key: KeyHandle): Promise<Buffer> {
    return this.hsm.wrapKwp(await this.sessionMaster(), key);
  }

  /**
   * Re-wraps stored keys under stored KEKs, all of them wrapped under the
   * master key: output i is keys[pairs[2i+1]] under keks[pairs[2i]]. Each is
   * unwrapped once for the call and destroyed before it returns.
   */
  async translate(keks: WrappedAesKey[], keys: WrappedAesKey[], pairs: Uint32Array): Promise<Buffer[]> {
    return this.hsm.translateKwp({ unwrappingKey: await this.sessionMaster(), keks, keys, pairs });
  }
}
