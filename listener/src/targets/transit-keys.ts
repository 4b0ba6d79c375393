import { KeyhubError, SITE_KEK_PROBE_POLICY, SITE_TRANSIT_KEK_UNWRAP_TEMPLATE, SITE_TRANSPORT_UNWRAP_TEMPLATE, type Hsm, type KeyHandle, type KeyPolicy, type OaepHash } from '@keyhub/shared';
import { ListenerKeys } from '../listener-keys';

/** Labels of a transit target's keys in the listener's own token; never `keyhub-kek:` (root KEK rotation and re-enrollment destroy those). */
export const transitKekLabel = (target: string, kekId: string, version: number): string => `keyhub-transit-kek:${target}:${kekId}:v${version}`;
export const transitTransportLabel = (target: string): string => `keyhub-transit-transport:${target}`;

/**
 * A transit KEK as the listener's token stores it (shared/src/hsm/key-classes.ts,
 * "transit KEK class"): unwrap only, never extractable, AES-KWP and CMAC (its
 * KCV) only, and what it unwraps fixed by the token to SESSION objects that
 * are sensitive. Those may be extractable, which is the point: a keystore
 * or a cloud needs the key outside the token, so the key is unwrapped here
 * and then re-wrapped (for the cloud, in the token) or read out for the
 * write (keystore, cloud SHA-256 wraps), never stored in the token.
 */
export function transitKekPolicy(label: string): KeyPolicy {
  return {
    token: true,
    label,
    id: Buffer.from(label, 'utf8'),
    private: true,
    sensitive: true,
    extractable: false,
    encrypt: false,
    decrypt: false,
    sign: false,
    verify: false,
    wrap: false,
    unwrap: true,
    derive: false,
    allowedMechanisms: ['kwp', 'aes-cmac'],
    unwrapTemplate: SITE_TRANSIT_KEK_UNWRAP_TEMPLATE,
  };
}

/**
 * The keys of one keystore or cloud target, in the listener's OWN token: its
 * transit KEKs and the transport key the hub wraps a new one to. It plays the
 * part a target token's ListenerKeys plays for a PKCS#11 target with a token
 * of its own (target-keks.ts: request, approval by fingerprint, KCV-confirmed
 * install), with labels per target, so several transit targets share the
 * token and the site's root KEKs are never touched by them:
 * - the transport pair is `keyhub-transit-transport:<target>` (unwrap only,
 *   the enrollment transport key's unwrap template), its private half
 *   destroyed once the KEK is in;
 * - each KEK is `keyhub-transit-kek:<target>:<kekId>:v<version>` with the transit
 *   policy above. Older KEKs stay: packages issued under them may be in flight.
 * A package is imported only under a KEK of its own target (findKek); the
 * root KEK never serves a transit target (its template makes every key it
 * unwraps non-extractable, so nothing could be written anyway).
 */
export class TransitKeys extends ListenerKeys {
  private readonly transit = new Map<string, KeyHandle>();

  constructor(
    hsm: Hsm,
    readonly target: string,
  ) {
    super(hsm);
  }

  override async ensureTargetTransportKey(bits: number): Promise<{ spki: Buffer; created: boolean }> {
    const label = transitTransportLabel(this.target);
    let created = false;
    if ((await this.hsm.findKeys({ class: 'private', label, token: true })).length === 0) {
      for (const stale of await this.hsm.findKeys({ class: 'public', label, token: true })) await this.hsm.destroy(stale);
      await this.hsm.generateRsaTransportKeyPair(bits, { token: true, label, id: Buffer.from(label, 'utf8'), unwrapTemplate: SITE_TRANSPORT_UNWRAP_TEMPLATE });
      created = true;
    }
    return { spki: (await this.targetTransportSpki())!, created };
  }

  override async targetTransportSpki(): Promise<Buffer | undefined> {
    const [h] = await this.hsm.findKeys({ class: 'public', label: transitTransportLabel(this.target), token: true });
    return h ? this.hsm.publicKeySpki(h) : undefined;
  }

  override async installTargetKek(blob: Buffer, hash: OaepHash, kekId: string, version: number, kcvOf: (h: KeyHandle) => Promise<string>, expectedKcv: string): Promise<'stored' | 'present'> {
    if (await this.findKek(kekId, version)) return 'present';
    const [transport] = await this.hsm.findKeys({ class: 'private', label: transitTransportLabel(this.target), token: true });
    if (!transport) throw new KeyhubError('KEK_UNKNOWN', `no transport key for target ${this.target} in token "${this.hsm.tokenLabel}": request the target KEK again`);
    let probe: KeyHandle;
    try {
      probe = await this.hsm.unwrapRsaOaep(transport, blob, hash, SITE_KEK_PROBE_POLICY);
    } catch (err) {
      throw new KeyhubError('UNWRAP_FAILED', 'transit KEK could not be unwrapped with the target transport key', { cause: err });
    }
    try {
      const kcv = await kcvOf(probe);
      if (kcv !== expectedKcv) throw new KeyhubError('KCV_MISMATCH', `transit KEK KCV ${kcv} differs from the hub's ${expectedKcv}`);
    } finally {
      await this.hsm.destroy(probe);
    }
    const label = transitKekLabel(this.target, kekId, version);
    this.transit.set(label, await this.hsm.unwrapRsaOaep(transport, blob, hash, transitKekPolicy(label)));
    await this.hsm.destroy(transport);
    return 'stored';
  }

  /** A transit KEK of this target; the site's root KEKs and other targets' KEKs are not found here. */
  override async findKek(kekId: string, version: number): Promise<KeyHandle | undefined> {
    const label = transitKekLabel(this.target, kekId, version);
    const cached = this.transit.get(label);
    if (cached) return cached;
    const [h] = await this.hsm.findKeys({ class: 'secret', label, token: true });
    if (!h) return undefined;
    this.transit.set(label, h);
    return h;
  }
}
