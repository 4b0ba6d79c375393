import { enrollmentFingerprint, signingDigest, type Message, type SignedEnvelope, publicKeyFingerprint } from '@keyhub/protocol';
import { KeyhubError, SITE_KEK_PROBE_POLICY, SITE_TRANSPORT_UNWRAP_TEMPLATE, siteImportKekPolicy, type Hsm, type KeyHandle, type OaepHash } from '@keyhub/shared';

export const IDENTITY_LABEL = 'keyhub-identity';
export const TRANSPORT_LABEL = 'keyhub-transport';
/** The transport pair made in another target's token for that target's own KEK (issue 12). */
export const TARGET_TRANSPORT_LABEL = 'keyhub-target-transport';
const KEK_ID_PREFIX = 'keyhub-kek:';

export const kekLabel = (kekId: string, version: number): string => `${KEK_ID_PREFIX}${kekId}:v${version}`;

/**
 * The listener's keys in its HSM: the identity pair (EC P-256, signs everything
 * the listener sends), the transport pair (RSA, receives the root KEK by
 * OAEP unwrap, then its private half is destroyed) and the root KEKs
 * themselves (AES-256, unwrap only, never extractable, AES-KWP and CMAC only,
 * and what they unwrap fixed by the token: shared/src/hsm/key-classes.ts).
 */
export class ListenerKeys {
  private identityPrivate?: KeyHandle;
  private identitySpkiCache?: Buffer;
  private readonly kekHandles = new Map<string, KeyHandle>();

  constructor(readonly hsm: Hsm) {}

  /** Remembered once true: a token search scans every object, and a full token holds thousands. */
  async hasIdentity(): Promise<boolean> {
    if (this.identityPrivate) return true;
    const [h] = await this.hsm.findKeys({ class: 'private', label: IDENTITY_LABEL, token: true });
    this.identityPrivate = h;
    return h !== undefined;
  }

  /** Creates the identity and transport pairs unless they exist; enrollment is repeatable. */
  async ensureEnrollmentKeys(transportBits: number): Promise<{ created: boolean }> {
    let created = false;
    const id = (l: string) => Buffer.from(l, 'utf8');
    if ((await this.hsm.findKeys({ class: 'private', label: IDENTITY_LABEL, token: true })).length === 0) {
      await this.hsm.generateEcP256KeyPair({ token: true, label: IDENTITY_LABEL, id: id(IDENTITY_LABEL) });
      created = true;
    }
    if ((await this.hsm.findKeys({ class: 'private', label: TRANSPORT_LABEL, token: true })).length === 0) {
      // The public half of a transport key retired at root KEK install stays for `status`; a new pair replaces it.
      for (const stale of await this.hsm.findKeys({ class: 'public', label: TRANSPORT_LABEL, token: true })) await this.hsm.destroy(stale);
      await this.hsm.generateRsaTransportKeyPair(transportBits, { token: true, label: TRANSPORT_LABEL, id: id(TRANSPORT_LABEL), unwrapTemplate: SITE_TRANSPORT_UNWRAP_TEMPLATE });
      created = true;
    }
    return { created };
  }

  async identitySpki(): Promise<Buffer> {
    if (!this.identitySpkiCache) this.identitySpkiCache = await this.publicSpki(IDENTITY_LABEL);
    return this.identitySpkiCache;
  }

  transportSpki(): Promise<Buffer> {
    return this.publicSpki(TRANSPORT_LABEL);
  }

  /** With the site's NATS user key, which the enrollment also binds (see protocol's enrollmentFingerprint). */
  async enrollmentFingerprint(listenerId: string, natsUserKey?: string): Promise<string> {
    return enrollmentFingerprint(listenerId, (await this.identitySpki()).toString('base64'), (await this.transportSpki()).toString('base64'), natsUserKey);
  }

  async sign<M extends Message>(payload: M): Promise<SignedEnvelope<M>> {
    if (!this.identityPrivate) this.identityPrivate = await this.one('private', IDENTITY_LABEL);
    const value = await this.hsm.signDigestEcdsa(this.identityPrivate, signingDigest(payload));
    return { payload, signature: { alg: 'ES256', keyId: publicKeyFingerprint(await this.identitySpki()), value: value.toString('base64') } };
  }

  /**
   * Unwraps a root KEK sent under the transport key: first as a session copy
   * to check its KCV, then into the token as a KEK of the HSM-import class.
   * Then the transport private key is destroyed: the root KEK message stays
   * in the stream for a while, and nothing may unwrap it again (also not
   * someone holding the PIN, with a more permissive template than ours).
   */
  async unwrapRootKek(blob: Buffer, hash: OaepHash, kekId: string, version: number, kcvOf: (h: KeyHandle) => Promise<string>, expectedKcv: string): Promise<'stored' | 'present'> {
    if (await this.findKek(kekId, version)) {
      await this.retireTransportKey();
      return 'present';
    }
    const transport = await this.one('private', TRANSPORT_LABEL);
    let probe: KeyHandle;
    try {
      probe = await this.hsm.unwrapRsaOaep(transport, blob, hash, SITE_KEK_PROBE_POLICY);
    } catch (err) {
      throw new KeyhubError('UNWRAP_FAILED', 'root KEK could not be unwrapped with the transport key', { cause: err });
    }
    try {
      const kcv = await kcvOf(probe);
      if (kcv !== expectedKcv) throw new KeyhubError('KCV_MISMATCH', `root KEK KCV ${kcv} differs from the hub's ${expectedKcv}`);
    } finally {
      await this.hsm.destroy(probe);
    }
    const label = kekLabel(kekId, version);
    const handle = await this.hsm.unwrapRsaOaep(transport, blob, hash, siteImportKekPolicy(label, Buffer.from(label, 'utf8')));
    this.kekHandles.set(label, handle);
    await this.retireTransportKey();
    // A root KEK that came by the transport key is a (new) enrollment: root KEKs of an earlier one (declared compromised) go.
    await this.destroyRootKeks((l) => l !== label);
    return 'stored';
  }

  /**
   * Rotation: the next root KEK, wrapped (AES-KWP) under the current one.
   * As at enrollment, a session probe checks the KCV first, then it is
   * unwrapped into the token with the root KEK policy. The current KEK's
   * CKA_UNWRAP_TEMPLATE (sensitive, never extractable) holds for the new
   * KEK as for any key it delivers, so no template is widened for this.
   * Retirement: the site keeps the KEK it was wrapped under (packages in
   * flight) and destroys every older one.
   */
  async unwrapRotatedRootKek(
    under: { id: string; version: number },
    next: { id: string; version: number; kcv: string; blob: Buffer },
    kcvOf: (h: KeyHandle) => Promise<string>,
  ): Promise<'stored' | 'present'> {
    const result = await this.installSuccessorKek(under, next, kcvOf, 'rotated root KEK');
    await this.destroyRootKeks((_l, v) => v < under.version);
    return result;
  }

  /**
   * A KEK's successor, wrapped (AES-KWP) under a KEK this token holds (root
   * KEK rotation above; a target KEK rotation in a target token,
   * targets/target-keks.ts): a session probe checks the KCV first
   * (KCV_MISMATCH: nothing stored), then it is unwrapped into the token with
   * the root KEK policy. Destroys nothing: the caller says what goes.
   */
  async installSuccessorKek(
    under: { id: string; version: number },
    next: { id: string; version: number; kcv: string; blob: Buffer },
    kcvOf: (h: KeyHandle) => Promise<string>,
    what: string,
  ): Promise<'stored' | 'present'> {
    if (await this.findKek(next.id, next.version)) return 'present';
    const current = await this.findKek(under.id, under.version);
    if (!current) throw new KeyhubError('KEK_UNKNOWN', `the KEK v${under.version} the ${what} is wrapped under is not held in token "${this.hsm.tokenLabel}"`);
    let probe: KeyHandle;
    try {
      probe = await this.hsm.unwrapKwp(current, next.blob, 32, SITE_KEK_PROBE_POLICY);
    } catch (err) {
      throw new KeyhubError('UNWRAP_FAILED', `${what} could not be unwrapped with the KEK it names`, { cause: err });
    }
    try {
      const kcv = await kcvOf(probe);
      if (kcv !== next.kcv) throw new KeyhubError('KCV_MISMATCH', `${what} KCV ${kcv} differs from the hub's ${next.kcv}`);
    } finally {
      await this.hsm.destroy(probe);
    }
    const label = kekLabel(next.id, next.version);
    this.kekHandles.set(label, await this.hsm.unwrapKwp(current, next.blob, 32, siteImportKekPolicy(label, Buffer.from(label, 'utf8'))));
    return 'stored';
  }

  /** Destroys exactly these KEKs (by id and version) if the token holds them; returns how many went. */
  async destroyKeks(which: ReadonlyArray<{ id: string; version: number }>): Promise<number> {
    let destroyed = 0;
    for (const k of which) {
      const label = kekLabel(k.id, k.version);
      this.kekHandles.delete(label);
      for (const h of await this.hsm.findKeys({ class: 'secret', label, token: true })) {
        await this.hsm.destroy(h);
        destroyed++;
      }
    }
    return destroyed;
  }

  /**
   * A target token (issue 12): the RSA transport pair its own KEK will be
   * wrapped to, made in THAT token (unwrap only, with the same unwrap
   * template as the site's enrollment transport key) unless one is waiting
   * already. Returns its public key (DER SPKI).
   */
  async ensureTargetTransportKey(bits: number): Promise<{ spki: Buffer; created: boolean }> {
    let created = false;
    if ((await this.hsm.findKeys({ class: 'private', label: TARGET_TRANSPORT_LABEL, token: true })).length === 0) {
      for (const stale of await this.hsm.findKeys({ class: 'public', label: TARGET_TRANSPORT_LABEL, token: true })) await this.hsm.destroy(stale);
      const id = Buffer.from(TARGET_TRANSPORT_LABEL, 'utf8');
      await this.hsm.generateRsaTransportKeyPair(bits, { token: true, label: TARGET_TRANSPORT_LABEL, id, unwrapTemplate: SITE_TRANSPORT_UNWRAP_TEMPLATE });
      created = true;
    }
    return { spki: await this.publicSpki(TARGET_TRANSPORT_LABEL), created };
  }

  /** The public half of the target transport key, if any (it stays after install, like the enrollment one). */
  async targetTransportSpki(): Promise<Buffer | undefined> {
    const [h] = await this.hsm.findKeys({ class: 'public', label: TARGET_TRANSPORT_LABEL, token: true });
    return h ? this.hsm.publicKeySpki(h) : undefined;
  }

  /**
   * Installs a target's own KEK in this (target) token, as unwrapRootKek does
   * for the root KEK: a session probe checks the KCV first (KCV_MISMATCH:
   * nothing stored), then the KEK is unwrapped into the token with the root
   * KEK's policy (unwrap only, never extractable, its unwrap template fixed),
   * and the transport private key is destroyed. Older KEKs of the target
   * stay: packages issued under them may still be in flight.
   */
  async installTargetKek(blob: Buffer, hash: OaepHash, kekId: string, version: number, kcvOf: (h: KeyHandle) => Promise<string>, expectedKcv: string): Promise<'stored' | 'present'> {
    if (await this.findKek(kekId, version)) return 'present';
    const [transport] = await this.hsm.findKeys({ class: 'private', label: TARGET_TRANSPORT_LABEL, token: true });
    if (!transport) throw new KeyhubError('KEK_UNKNOWN', `no target transport key in token "${this.hsm.tokenLabel}": request the target KEK again`);
    let probe: KeyHandle;
    try {
      probe = await this.hsm.unwrapRsaOaep(transport, blob, hash, SITE_KEK_PROBE_POLICY);
    } catch (err) {
      throw new KeyhubError('UNWRAP_FAILED', 'target KEK could not be unwrapped with the target transport key', { cause: err });
    }
    try {
      const kcv = await kcvOf(probe);
      if (kcv !== expectedKcv) throw new KeyhubError('KCV_MISMATCH', `target KEK KCV ${kcv} differs from the hub's ${expectedKcv}`);
    } finally {
      await this.hsm.destroy(probe);
    }
    const label = kekLabel(kekId, version);
    this.kekHandles.set(label, await this.hsm.unwrapRsaOaep(transport, blob, hash, siteImportKekPolicy(label, Buffer.from(label, 'utf8'))));
    await this.hsm.destroy(transport);
    return 'stored';
  }

  /** Destroys the root KEKs in the token whose label and version match; returns how many. */
  async destroyRootKeks(which: (label: string, version: number) => boolean): Promise<number> {
    let destroyed = 0;
    for (const h of await this.hsm.findKeys({ class: 'secret', token: true })) {
      const { label } = await this.hsm.keyInfo(h);
      const m = /^keyhub-kek:[0-9a-f-]+:v(\d+)$/.exec(label);
      if (!m || !which(label, Number(m[1]))) continue;
      await this.hsm.destroy(h);
      this.kekHandles.delete(label);
      destroyed++;
    }
    return destroyed;
  }

  /**
   * A root KEK the custodians' parts combined to (`root-kek enter`): a
   * session probe from the value checks the KCV first, then the key is
   * created in the token with the root KEK policy (made from its value, so
   * unlike an unwrapped one it can be neither modified nor copied). Then, as
   * after a root KEK sent by transport key, the transport key and the root
   * KEKs of an earlier enrollment go. The caller wipes `value`.
   */
  async installCombinedRootKek(value: Buffer, kekId: string, version: number, kcvOf: (h: KeyHandle) => Promise<string>, expectedKcv: string): Promise<'stored' | 'present'> {
    if (await this.findKek(kekId, version)) return 'present';
    const probe = await this.hsm.createAesKey(value, SITE_KEK_PROBE_POLICY);
    try {
      const kcv = await kcvOf(probe);
      if (kcv !== expectedKcv) throw new KeyhubError('KCV_MISMATCH', `the combined root KEK's KCV ${kcv} differs from the hub's ${expectedKcv}`);
    } finally {
      await this.hsm.destroy(probe);
    }
    const label = kekLabel(kekId, version);
    this.kekHandles.set(label, await this.hsm.createAesKey(value, { ...siteImportKekPolicy(label, Buffer.from(label, 'utf8')), modifiable: false, copyable: false }));
    await this.retireTransportKey();
    await this.destroyRootKeks((l) => l !== label);
    return 'stored';
  }

  /** Whether the site is enrolling: its transport private key exists until a root KEK is installed. */
  async hasTransportKey(): Promise<boolean> {
    return (await this.hsm.findKeys({ class: 'private', label: TRANSPORT_LABEL, token: true })).length > 0;
  }

  /**
   * Destroys the transport private key once a root KEK is installed; its
   * public half stays so that `status` can still show the enrollment
   * fingerprint. A later enrollment makes a new pair. Idempotent.
   */
  async retireTransportKey(): Promise<boolean> {
    const found = await this.hsm.findKeys({ class: 'private', label: TRANSPORT_LABEL, token: true });
    for (const h of found) await this.hsm.destroy(h);
    return found.length > 0;
  }

  async findKek(kekId: string, version: number): Promise<KeyHandle | undefined> {
    const label = kekLabel(kekId, version);
    const cached = this.kekHandles.get(label);
    if (cached) return cached;
    const [h] = await this.hsm.findKeys({ class: 'secret', label, token: true });
    if (h) this.kekHandles.set(label, h);
    return h;
  }

  async rootKekCount(): Promise<number> {
    const all = await Promise.all((await this.hsm.findKeys({ class: 'secret', token: true })).map((h) => this.hsm.keyInfo(h)));
    return all.filter((k) => k.label.startsWith(KEK_ID_PREFIX)).length;
  }

  private async publicSpki(label: string): Promise<Buffer> {
    return this.hsm.publicKeySpki(await this.one('public', label));
  }

  private async one(cls: 'private' | 'public', label: string): Promise<KeyHandle> {
    const [h] = await this.hsm.findKeys({ class: cls, label, token: true });
    if (!h) throw new KeyhubError('NOT_ENROLLED', `no ${label} key in token "${this.hsm.tokenLabel}": run \`keyhub-listener enroll\``);
    return h;
  }
}
