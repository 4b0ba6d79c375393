import { createHash } from 'node:crypto';
import { publicKeyFingerprint, signingDigest, type Message, type SignedEnvelope } from '@keyhub/protocol';
import { KeyhubError, type Hsm, type KeyHandle, type KeyPolicy } from '@keyhub/shared';

export const HMK_LABEL = 'keyhub-hmk';
export const SIGNING_LABEL = 'keyhub-signing';

/**
 * The hub's two long-lived token objects: the Hub Master Key (AES-256,
 * wrap/unwrap only, never extractable) under which every managed key and root
 * KEK is stored, and the EC P-256 hub signing key.
 */
export class HubKeyring {
  private constructor(
    readonly hsm: Hsm,
    private readonly masterKey: KeyHandle,
    private readonly signingKey: KeyHandle,
    readonly signingSpki: Buffer,
  ) {}

  get fingerprint(): string {
    return publicKeyFingerprint(this.signingSpki);
  }

  /** Opens the existing keys; NOT_INITIALIZED when `keyhub init` has not run on this token. */
  static async load(hsm: Hsm): Promise<HubKeyring> {
    const found = await HubKeyring.find(hsm);
    if (!found) throw new KeyhubError('NOT_INITIALIZED', `token "${hsm.tokenLabel}" holds no hub keys: run \`keyhub init\``);
    return found;
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

  async signBytes(data: Buffer): Promise<Buffer> {
    return this.hsm.signDigestEcdsa(this.signingKey, createHash('sha256').update(data).digest());
  }

  wrapUnderMaster(key: KeyHandle): Promise<Buffer> {
    return this.hsm.wrapKwp(this.masterKey, key);
  }

  /** Unwraps a stored blob into a session object that lives only for the operation. */
  unwrapFromMaster(blob: Buffer, lengthBytes: number, policy: Omit<KeyPolicy, 'token'>): Promise<KeyHandle> {
    return this.hsm.unwrapKwp(this.masterKey, blob, lengthBytes, { ...policy, token: false });
  }
}
