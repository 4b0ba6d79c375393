import { createHash, createPublicKey, randomUUID } from 'node:crypto';
import { Tr31Error, Tr31Secrets, tr31HeaderFieldsFor, wrapTr31, type ErrorCode, type KeyAlgorithm, type KeyUsage, type Tr31HeaderFields } from '@keyhub/protocol';
import { aesKcv, KeyhubError, tdesKcv, type KeyHandle, type KeyPolicy, type Logger, type OaepHash, KeyedLock } from '@keyhub/shared';
import type { ImportRequest, ImportResult, InventoryItem, KeyRef, LifecycleEffect, Target, TargetHealth } from './target';
import { TransitExporter, unwrapChecked } from './transit-import';
import type { TransitKeys } from './transit-keys';

export type Tr31BlockVersion = 'D' | 'B';

export interface Tr31TargetSettings {
  /** The payment HSM's API (test/src/fixtures/payment-hsm describes it). */
  endpoint: string;
  /** D (AES KBPK, the default) or B (TDES KBPK, for payment HSMs that know only TDES). */
  version: Tr31BlockVersion;
  /** SHA-256 of the payment HSM's transport key (DER SPKI), hex: checked before any KBPK is sent to it. */
  transportKeyFingerprint: string;
  /** The OAEP hash the KBPK is wrapped with to the transport key (SoftHSM2 wraps with SHA-1 only). */
  kbpkOaepHash: OaepHash;
  /** Per request to the payment HSM. */
  timeoutMs: number;
  logger?: Logger;
  /** Sees every buffer that held the clear key or the KBPK, right after it was zero-filled (tests). */
  onWiped?: (wiped: readonly Buffer[]) => void;
  /** The holder of the block building's intermediates (derived keys, padded payload), wiped when the block is made; tests pass one that records them. */
  secrets?: () => Tr31Secrets;
}

/** The KBPK as the token holds it: per version, AES-256 for D (X9.24: no weaker than any AES key it protects), three-key TDES for B. */
const KBPK_ALGORITHM: Record<Tr31BlockVersion, { algorithm: KeyAlgorithm; type: 'aes' | 'des3'; length: number }> = {
  D: { algorithm: 'AES-256', type: 'aes', length: 32 },
  B: { algorithm: 'TDES-3KEY', type: 'des3', length: 24 },
};

const kbpkId = (target: string): Buffer => Buffer.from(`keyhub-tr31-kbpk:${target}`, 'utf8');
const kbpkLabel = (target: string, id: string): string => `keyhub-tr31-kbpk:${target}:${id}`;

/**
 * The KBPK in the listener's token: a token object, sensitive, extractable
 * only because no PKCS#11 token here builds TR-31 blocks, so it must be
 * wrapped to the payment HSM once (RSA-OAEP, in the token) and read out by
 * the TransitExporter for each block. It may not wrap, unwrap or decrypt;
 * CMAC (AES) or ECB encryption (TDES) is the one usage its KCV needs.
 */
function kbpkPolicy(target: string, id: string, type: 'aes' | 'des3'): KeyPolicy {
  const label = kbpkLabel(target, id);
  return {
    token: true,
    label,
    id: kbpkId(target),
    private: true,
    sensitive: true,
    extractable: true,
    encrypt: type === 'des3',
    decrypt: false,
    sign: type === 'aes',
    verify: false,
    wrap: false,
    unwrap: false,
    derive: false,
  };
}

interface Kbpk {
  handle: KeyHandle;
  id: string;
  algorithm: KeyAlgorithm;
  length: number;
  kcv: string;
}

interface HeldKey {
  label: string;
  kcv: string;
  header: Record<string, string>;
}

/** Codes the payment HSM answers that are ours too; any other refusal is TARGET_IMPORT_FAILED with its code in the details. */
const REFUSALS: Record<string, ErrorCode> = {
  TR31_MAC_INVALID: 'TR31_MAC_INVALID',
  TR31_MALFORMED: 'TR31_MALFORMED',
  TR31_KBPK_MISMATCH: 'TR31_KBPK_INVALID',
  KEY_LABEL_IN_USE: 'TARGET_OBJECT_MISMATCH',
  KBPK_INVALID: 'TR31_KBPK_INVALID',
};

class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const LABEL = /^([0-9a-f-]{36})\.v(\d+)$/;
const labelOf = (ref: KeyRef): string => `${ref.keyId}.v${ref.version}`;

/**
 * A payment HSM that takes keys as TR-31 key blocks (ANSI X9.143, version D
 * or B). A package is unwrapped under this target's transit KEK as a
 * session object in the listener's token and its KCV checked there; then the
 * key AND the target's KBPK are read out of the token into this process
 * (TransitExporter), the block is built (protocol/src/key-blocks) with the
 * key's usages, mode of use and exportability in its header, and every clear
 * buffer (key, KBPK, derived keys, padded payload) is zeroed before the
 * block is sent, whether the build succeeded or not. The payment HSM answers
 * the KCV of the key it opened, which must be the hub's.
 *
 * The KBPK is established like any KEK: made in the listener token when the
 * target has none, wrapped RSA-OAEP in the token to the payment HSM's
 * transport key, which must have the fingerprint pinned in the
 * configuration (checked before anything is sent), and confirmed by the KCV
 * the payment HSM computes; a mismatch discards it (TR31_KBPK_KCV_MISMATCH).
 *
 * Lifecycle: a payment HSM key carries its usage in its block header and has
 * no flags to switch, so suspend, deactivate, compromise and destroy each
 * DELETE the key (effect `destroyed`); resume finds it (`usages_restored`)
 * or not (`absent`, a new delivery brings it back).
 */
export class Tr31Target implements Target {
  readonly kind = 'tr31';
  private readonly exporter: TransitExporter;
  private kbpk?: Kbpk;
  private establishing?: Promise<Kbpk>;
  private readonly locks = new KeyedLock();
  private readonly fingerprint: string;

  constructor(
    readonly name: string,
    private readonly keys: TransitKeys,
    private readonly settings: Tr31TargetSettings,
  ) {
    this.exporter = new TransitExporter(settings.onWiped);
    this.fingerprint = settings.transportKeyFingerprint.toLowerCase().replace(/^sha256:/, '');
  }

  import(req: ImportRequest): Promise<ImportResult> {
    return this.serialized({ keyId: req.key.id, version: req.key.version }, async () => {
      try {
        return await this.importOnce(req);
      } catch (err) {
        // The payment HSM lost our KBPK (restored, reset): establish it again, once.
        if (!(err instanceof HttpRefusal && err.code === 'KBPK_UNKNOWN')) throw this.asKeyhubError(err, 'TARGET_IMPORT_FAILED');
        this.kbpk = undefined;
        try {
          return await this.importOnce(req);
        } catch (again) {
          throw this.asKeyhubError(again, 'TARGET_IMPORT_FAILED');
        }
      }
    });
  }

  private headerFor(req: ImportRequest): Tr31HeaderFields {
    try {
      const fields = tr31HeaderFieldsFor({ algorithm: req.key.algorithm, usages: req.key.usages, exportable: req.key.exportable, version: req.key.version });
      if (this.settings.version === 'B' && fields.algorithm === 'A')
        throw new Tr31Error('TR31_KBPK_INVALID', `target ${this.name} makes version B blocks (TDES KBPK), which may not carry the AES key ${req.key.name}: use version D`);
      return fields;
    } catch (err) {
      throw KeyhubError.from(err);
    }
  }

  private async importOnce(req: ImportRequest): Promise<ImportResult> {
    const label = labelOf({ keyId: req.key.id, version: req.key.version });
    const hsm = this.keys.hsm;
    // The policy's target kinds and usages, then the KCV in the token: nothing leaves the token before these hold.
    const handle = await unwrapChecked(this.keys, req, this.kind);
    let block: string;
    let kbpk: Kbpk;
    let fields: Tr31HeaderFields;
    const clear: Buffer[] = [];
    const secrets = this.settings.secrets?.() ?? new Tr31Secrets();
    try {
      fields = this.headerFor(req);
      const held = await this.held(label);
      if (held) {
        if (held.kcv === req.key.kcv) return { outcome: 'already_present', kcv: req.key.kcv };
        throw new KeyhubError('TARGET_OBJECT_MISMATCH', `payment HSM ${this.name} holds another key under ${label}`);
      }
      kbpk = await this.ensureKbpk();
      const key = await this.exporter.export(hsm, handle, req);
      clear.push(key);
      const kbpkBytes = await this.exporter.export(hsm, kbpk.handle, kbpkRequest(kbpk));
      clear.push(kbpkBytes);
      block = wrapTr31(kbpkBytes, { version: this.settings.version, ...fields }, key, { secrets });
    } finally {
      // The clear key, the KBPK and the build's intermediates end here, built or not, before anything is sent.
      for (const b of clear) b.fill(0);
      secrets.wipe();
      this.settings.onWiped?.(clear);
      await hsm.destroy(handle).catch(() => undefined);
    }
    return this.deliver(req, label, kbpk, block, fields);
  }

  private async deliver(req: ImportRequest, label: string, kbpk: Kbpk, block: string, fields: Tr31HeaderFields): Promise<ImportResult> {
    const answer = (await this.call('POST', '/keys', { kbpkId: kbpk.id, label, name: `${req.key.name}.v${req.key.version}`, block })) as HeldKey & { already?: boolean };
    if (answer.kcv !== req.key.kcv) {
      // Not the hub's key: it must not stay there under this label.
      await this.call('DELETE', `/keys/${encodeURIComponent(label)}`).catch(() => undefined);
      throw new KeyhubError('KCV_MISMATCH', `payment HSM ${this.name} opened a key with KCV ${answer.kcv}, not ${req.key.kcv}`);
    }
    const h = answer.header ?? {};
    const wrong = (['keyUsage', 'algorithm', 'modeOfUse', 'exportability'] as const).filter((f) => h[f] !== fields[f]);
    if (wrong.length) throw new KeyhubError('TARGET_OBJECT_MISMATCH', `payment HSM ${this.name} reports header field(s) ${wrong.join(', ')} other than the block's`);
    return { outcome: answer.already ? 'already_present' : 'imported', kcv: answer.kcv };
  }

  private async held(label: string): Promise<HeldKey | undefined> {
    try {
      return (await this.call('GET', `/keys/${encodeURIComponent(label)}`)) as HeldKey;
    } catch (err) {
      if (err instanceof HttpRefusal && err.code === 'KEY_NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** The confirmed KBPK: found in the token and known to the payment HSM with the same KCV, or made and established now. */
  private ensureKbpk(): Promise<Kbpk> {
    if (this.kbpk) return Promise.resolve(this.kbpk);
    this.establishing ??= this.establish()
      .then((k) => (this.kbpk = k))
      .finally(() => (this.establishing = undefined));
    return this.establishing;
  }

  private async establish(): Promise<Kbpk> {
    const hsm = this.keys.hsm;
    const want = KBPK_ALGORITHM[this.settings.version];
    for (const h of await hsm.findKeys({ class: 'secret', id: kbpkId(this.name), token: true })) {
      const info = await hsm.keyInfo(h);
      const prefix = kbpkLabel(this.name, '');
      if (info.keyType !== want.type || !info.label.startsWith(prefix)) {
        // A KBPK for the other version (the configuration changed): never used again.
        await hsm.destroy(h);
        continue;
      }
      const kbpk: Kbpk = { handle: h, id: info.label.slice(prefix.length), algorithm: want.algorithm, length: want.length, kcv: await this.kcvInToken(h, want.type) };
      let known: { kcv?: string } | undefined;
      try {
        known = (await this.call('GET', `/kbpk/${encodeURIComponent(kbpk.id)}`)) as { kcv?: string };
      } catch (err) {
        if (!(err instanceof HttpRefusal && err.code === 'KBPK_UNKNOWN')) throw err;
      }
      if (known?.kcv === kbpk.kcv) return kbpk;
      if (known) {
        // The payment HSM holds another key under our KBPK's id: ours is not usable there.
        await hsm.destroy(h);
        continue;
      }
      // Made but never confirmed (a crash between the two, or the payment HSM was reset): sent again.
      await this.send(kbpk);
      return kbpk;
    }
    const id = randomUUID();
    const handle = await hsm.generateSecretKey(want.type, want.length, kbpkPolicy(this.name, id, want.type));
    try {
      const kbpk: Kbpk = { handle, id, algorithm: want.algorithm, length: want.length, kcv: await this.kcvInToken(handle, want.type) };
      await this.send(kbpk);
      this.settings.logger?.info({ target: this.name, kbpkKcv: kbpk.kcv }, 'TR-31 KBPK established with the payment HSM');
      return kbpk;
    } catch (err) {
      await hsm.destroy(handle).catch(() => undefined);
      throw err;
    }
  }

  private kcvInToken(h: KeyHandle, type: 'aes' | 'des3'): Promise<string> {
    return type === 'aes' ? aesKcv(this.keys.hsm, h) : tdesKcv(this.keys.hsm, h);
  }

  /** Wraps the KBPK in the token to the payment HSM's pinned transport key and sends it; the KCV it answers must be the token's. */
  private async send(kbpk: Kbpk): Promise<void> {
    const hsm = this.keys.hsm;
    const spki = await this.transportKey();
    const pub = await hsm.importRsaWrappingKey(spki);
    let wrapped: Buffer;
    try {
      wrapped = await hsm.wrapRsaOaep(pub, kbpk.handle, this.settings.kbpkOaepHash);
    } finally {
      await hsm.destroy(pub).catch(() => undefined);
    }
    const answer = (await this.call('POST', '/kbpk', { id: kbpk.id, algorithm: kbpk.algorithm, wrapped: wrapped.toString('base64'), oaepHash: this.settings.kbpkOaepHash, kcv: kbpk.kcv })) as {
      kcv?: string;
    };
    if (answer.kcv !== kbpk.kcv) {
      throw new KeyhubError('TR31_KBPK_KCV_MISMATCH', `payment HSM ${this.name} computed KCV ${String(answer.kcv)} for the KBPK, the token ${kbpk.kcv}: the KBPK is discarded`);
    }
  }

  /** The payment HSM's transport key, DER SPKI, only if its SHA-256 is the pinned fingerprint. */
  private async transportKey(): Promise<Buffer> {
    const answer = (await this.call('GET', '/transport-key')) as { spki?: string };
    let spki: Buffer;
    try {
      const key = createPublicKey(String(answer.spki));
      if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new Error('not an RSA key of 2048 bits or more');
      spki = key.export({ format: 'der', type: 'spki' });
    } catch (err) {
      throw new KeyhubError('TR31_TRANSPORT_KEY_MISMATCH', `payment HSM ${this.name} answered no usable RSA transport key`, { cause: err });
    }
    const seen = createHash('sha256').update(spki).digest('hex');
    if (seen !== this.fingerprint)
      throw new KeyhubError('TR31_TRANSPORT_KEY_MISMATCH', `payment HSM ${this.name} offers transport key sha256:${seen}, not the pinned sha256:${this.fingerprint}: no KBPK is sent`);
    return spki;
  }

  async destroy(ref: KeyRef): Promise<boolean> {
    return this.serialized(ref, () => this.remove(ref));
  }

  async disable(ref: KeyRef): Promise<boolean> {
    return (await this.held(labelOf(ref)).catch((e: unknown) => Promise.reject(this.asKeyhubError(e, 'TARGET_IMPORT_FAILED')))) !== undefined;
  }

  suspend(ref: KeyRef): Promise<LifecycleEffect> {
    return this.removeAsEffect(ref);
  }

  async resume(ref: KeyRef, _usages: KeyUsage[]): Promise<LifecycleEffect> {
    return (await this.disable(ref)) ? 'usages_restored' : 'absent';
  }

  deactivate(ref: KeyRef, _usages: KeyUsage[]): Promise<LifecycleEffect> {
    return this.removeAsEffect(ref);
  }

  compromise(ref: KeyRef): Promise<LifecycleEffect> {
    return this.removeAsEffect(ref);
  }

  private async removeAsEffect(ref: KeyRef): Promise<LifecycleEffect> {
    return (await this.serialized(ref, () => this.remove(ref))) ? 'destroyed' : 'absent';
  }

  private async remove(ref: KeyRef): Promise<boolean> {
    try {
      await this.call('DELETE', `/keys/${encodeURIComponent(labelOf(ref))}`);
      return true;
    } catch (err) {
      if (err instanceof HttpRefusal && err.code === 'KEY_NOT_FOUND') return false;
      throw this.asKeyhubError(err, 'TARGET_IMPORT_FAILED');
    }
  }

  async inventory(): Promise<InventoryItem[]> {
    let answer: { keys?: HeldKey[] };
    try {
      answer = (await this.call('GET', '/keys')) as { keys?: HeldKey[] };
    } catch (err) {
      throw this.asKeyhubError(err, 'TARGET_IMPORT_FAILED');
    }
    const items: InventoryItem[] = [];
    for (const k of answer.keys ?? []) {
      const m = LABEL.exec(k.label);
      if (!m) continue;
      const alg = k.header?.algorithm;
      items.push({
        keyId: m[1],
        version: Number(m[2]),
        label: k.label,
        algorithm: alg === 'A' ? 'AES' : alg === 'T' ? 'TDES' : alg === 'H' ? 'HMAC' : 'SECRET',
        enabled: true,
        ...(typeof k.kcv === 'string' ? { kcv: k.kcv } : {}),
      });
    }
    return items;
  }

  /** The payment HSM answers and offers the pinned transport key. */
  async health(): Promise<TargetHealth> {
    try {
      await this.transportKey();
      return { healthy: true };
    } catch (err) {
      return { healthy: false, detail: this.asKeyhubError(err, 'TARGET_UNAVAILABLE').code };
    }
  }

  /** One JSON request; no answer or a 5xx is TARGET_UNAVAILABLE (a passing failure), a 4xx an HttpRefusal with the payment HSM's code. */
  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.settings.endpoint), {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
    } catch (err) {
      throw new KeyhubError('TARGET_UNAVAILABLE', `payment HSM ${this.name} did not answer ${method} ${path.split('/')[1]}`, { cause: err });
    }
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      // A proxy's HTML page: its status decides.
    }
    if (res.status >= 500) throw new KeyhubError('TARGET_UNAVAILABLE', `payment HSM ${this.name} answered ${res.status} to ${method} ${path.split('/')[1]}`);
    if (res.status >= 400) throw new HttpRefusal(res.status, typeof json.error === 'string' ? json.error : `HTTP_${res.status}`, typeof json.message === 'string' ? json.message.slice(0, 200) : '');
    return json;
  }

  private asKeyhubError(err: unknown, fallback: ErrorCode): KeyhubError {
    if (err instanceof HttpRefusal) {
      const code = REFUSALS[err.code] ?? fallback;
      return new KeyhubError(code, `payment HSM ${this.name} refused: ${err.code}${err.message ? ` (${err.message})` : ''}`, { details: { paymentHsmError: err.code, status: err.status } });
    }
    return KeyhubError.from(err);
  }

  private serialized<T>(ref: KeyRef, work: () => Promise<T>): Promise<T> {
    return this.locks.run(labelOf(ref), work);
  }

  /** Destroys the transfer key (the KBPK stays in the token). */
  async close(): Promise<void> {
    await this.exporter.close();
  }
}

/** What the exporter needs to read the KBPK out: its algorithm and length. */
function kbpkRequest(kbpk: Kbpk): ImportRequest {
  return {
    key: { id: kbpk.id, name: 'tr31-kbpk', version: 1, algorithm: kbpk.algorithm, length: kbpk.length, usages: [], exportable: false, kcv: kbpk.kcv },
    wrapped: { kekId: '', kekVersion: 0, mechanism: 'AES-KWP', blob: Buffer.alloc(0) },
  };
}
