/**
 * What keystore and cloud targets share: a package is unwrapped under its
 * target's transit KEK (transit-keys.ts) in the listener's own token, as a
 * SESSION object only, its KCV is computed there and compared with the
 * package's before anything is written anywhere, and only then, for the
 * targets that need them, are its clear bytes read out of the token:
 *
 * - the token wraps the session object with AES-KWP under a transfer key (an
 *   AES-256 session object made in the token, whose value this process got
 *   once by RSA-OAEP to an RSA pair that exists only in its memory);
 * - node:crypto opens it with id-aes256-wrap-pad. Every intermediate buffer
 *   is wiped; the clear key is held by the caller's custody (the keystore's
 *   ClearBytes, the cloud importer's wipe) and wiped after the write; the
 *   transfer key is zeroed and destroyed after TRANSFER_USES keys or
 *   TRANSFER_IDLE_MS idle.
 *
 * No clear byte ever crosses the HSM interface this way; the RSA private key
 * that can open the transfer is never written anywhere and dies with the
 * process. The security of the clear bytes then rests on this process's
 * memory, which is why only keys whose policy allows keystore or cloud
 * targets are ever wrapped under a transit KEK (the hub's side).
 */
import { constants, generateKeyPairSync, privateDecrypt, type KeyObject } from 'node:crypto';
import { invalidUsages } from '@keyhub/protocol';
import { assertUsagesCompatible, KeyhubError, type Hsm, type KeyHandle, type KeyPolicy } from '@keyhub/shared';
import { ListenerKeys } from '../listener-keys';
import { kwpUnwrap } from './cloud/byok/kwp';
import { algorithmInfo, targetKcv, unwrapAs } from './pkcs11-key-types';
import type { ImportRequest } from './target';
import type { TransitKeys } from './transit-keys';

/**
 * The session copy of a delivered key: sensitive (the transit KEK's template
 * fixes it), never a token object, extractable only so it can be wrapped
 * again, with the one usage its KCV needs.
 */
export function transitSessionPolicy(req: ImportRequest): KeyPolicy {
  const info = algorithmInfo(req);
  const base: KeyPolicy = { token: false, private: true, sensitive: true, extractable: true };
  if (info.keyClass === 'private') return { ...base, sign: true };
  if (info.kcv === 'tdes-ecb') return { ...base, encrypt: true };
  if (info.kcv === 'hmac-sha256') return { ...base, sign: true };
  return { ...base, sign: true, encrypt: true };
}

/** The hub wraps a key for a keystore or a cloud only if its policy allows that kind; this checks it again before the key is out. */
export function assertTargetKind(keys: TransitKeys, req: ImportRequest, kind: string): void {
  const allowed = req.key.targetKinds ?? ['pkcs11'];
  if (!allowed.includes(kind)) throw new KeyhubError('TARGET_KIND_NOT_ALLOWED', `the policy of key ${req.key.name} allows ${allowed.join(', ')} targets, not ${kind} (target ${keys.target})`);
}

/**
 * Unwraps the package under its target's transit KEK as a session object and
 * proves it is the hub's key (KCV computed in the token; for a key pair, a
 * signature that verifies under the package's public key). The caller
 * destroys the handle. Nothing has been written when this throws.
 */
export async function unwrapChecked(keys: TransitKeys, req: ImportRequest, kind: string): Promise<KeyHandle> {
  assertTargetKind(keys, req, kind);
  assertUsagesCompatible(req.key.usages);
  const wrongForType = invalidUsages(req.key.algorithm, req.key.usages);
  if (wrongForType.length) throw new KeyhubError('KEY_USAGE_INVALID', `an ${req.key.algorithm} key cannot have usage ${wrongForType.join(', ')}`);
  const kek = await keys.findKek(req.wrapped.kekId, req.wrapped.kekVersion);
  if (!kek) {
    // The site's root KEK lookup (the class TransitKeys extends), for a clear message only.
    const root = await ListenerKeys.prototype.findKek.call(keys, req.wrapped.kekId, req.wrapped.kekVersion);
    throw new KeyhubError(
      'KEK_UNKNOWN',
      root
        ? `target ${keys.target} imports only under a transit KEK of its own, not under the root KEK (whose keys can never leave the token): run \`keyhub-listener target request ${keys.target}\``
        : `transit KEK ${req.wrapped.kekId} v${req.wrapped.kekVersion} of target ${keys.target} is not in token "${keys.hsm.tokenLabel}"`,
    );
  }
  let handle: KeyHandle;
  try {
    handle = await unwrapAs(keys.hsm, kek, req, transitSessionPolicy(req));
  } catch (err) {
    if (KeyhubError.is(err, 'KEY_LENGTH_INVALID')) throw err;
    throw new KeyhubError('UNWRAP_FAILED', `wrapped key failed to unwrap under the transit KEK of target ${keys.target}`, { cause: err, ckr: KeyhubError.is(err) ? err.ckr : undefined });
  }
  try {
    const kcv = await targetKcv(keys.hsm, handle, req);
    if (kcv !== req.key.kcv) throw new KeyhubError('KCV_MISMATCH', `KCV at target ${kcv} differs from expected ${req.key.kcv}`);
    return handle;
  } catch (err) {
    await keys.hsm.destroy(handle).catch(() => undefined);
    throw err;
  }
}

/**
 * The transfer key: AES-256, made in the token as a session object that can
 * only wrap (AES-KWP), extractable only so that RSA-OAEP can carry it out to
 * this process once. It serves up to TRANSFER_USES read-outs or
 * TRANSFER_IDLE_MS, then it is destroyed in the token and its bytes here are
 * zeroed: one RSA private-key operation per many keys instead of one per key.
 */
const TRANSFER_POLICY: KeyPolicy = {
  token: false,
  private: true,
  sensitive: true,
  extractable: true,
  encrypt: false,
  decrypt: false,
  sign: false,
  verify: false,
  wrap: true,
  unwrap: false,
  derive: false,
  allowedMechanisms: ['kwp'],
};
const TRANSFER_USES = 1000;
const TRANSFER_IDLE_MS = 10_000;

interface Transfer {
  hsm: Hsm;
  handle: KeyHandle;
  key: Buffer;
  uses: number;
  inFlight: number;
  retired: boolean;
}

/**
 * Reads delivered keys out of the token in clear, for targets that need the
 * bytes: the token wraps the key (AES-KWP) under a transfer key whose value
 * this process learnt by RSA-OAEP (SHA-1, what every token here does) to an
 * RSA-2048 pair made in memory at construction and never written anywhere;
 * node:crypto unwraps it. `onWiped` sees every intermediate buffer after it
 * was zero-filled (tests).
 */
export class TransitExporter {
  private readonly privateKey: KeyObject;
  private readonly spki: Buffer;
  private current?: Transfer;
  private making?: Promise<Transfer>;
  private idle?: NodeJS.Timeout;

  constructor(private readonly onWiped?: (wiped: readonly Buffer[]) => void) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = pair.privateKey;
    this.spki = pair.publicKey.export({ format: 'der', type: 'spki' });
  }

  /**
   * The clear bytes of `handle` (raw for secret keys, PKCS#8 DER for private
   * keys), in a fresh buffer the caller must wipe. SoftHSM2 zero-pads a key
   * to a multiple of 8 before KWP: the result is cut to the key's length
   * (secret keys) or to the PKCS#8 SEQUENCE's own length (private keys).
   */
  async export(hsm: Hsm, handle: KeyHandle, req: ImportRequest): Promise<Buffer> {
    const info = algorithmInfo(req);
    const t = await this.transfer(hsm);
    const scratch: Buffer[] = [];
    try {
      const padded = kwpUnwrap(t.key, await hsm.wrapKwp(t.handle, handle));
      scratch.push(padded);
      // What follows the key can only be SoftHSM2's zero padding to the next multiple of 8 (none from a token that pads by RFC 5649 itself).
      const length = info.keyClass === 'secret' ? req.key.length : derLength(padded);
      if (length > padded.length || padded.length - length > 7 || padded.subarray(length).some((b) => b !== 0)) {
        throw new KeyhubError(
          'KEY_LENGTH_INVALID',
          info.keyClass === 'secret' ? `the key read out of the token is not ${req.key.length} bytes` : 'the private key read out of the token is not one PKCS#8 structure',
        );
      }
      return Buffer.from(padded.subarray(0, length));
    } finally {
      for (const b of scratch) b.fill(0);
      this.onWiped?.(scratch);
      t.inFlight--;
      if (t.retired && t.inFlight === 0) await this.destroy(t);
    }
  }

  /** Zeroes the transfer key and destroys it in the token (also done after TRANSFER_IDLE_MS without use). */
  async close(): Promise<void> {
    if (this.idle) clearTimeout(this.idle);
    const t = this.current;
    this.current = undefined;
    if (t) await this.retire(t);
  }

  private async transfer(hsm: Hsm): Promise<Transfer> {
    let t = this.current;
    if (!t || t.hsm !== hsm || t.uses >= TRANSFER_USES) {
      if (t) {
        this.current = undefined;
        await this.retire(t);
      }
      this.making ??= this.make(hsm).finally(() => (this.making = undefined));
      t = await this.making;
      this.current = t;
    }
    t.uses++;
    t.inFlight++;
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => void this.close(), TRANSFER_IDLE_MS);
    this.idle.unref();
    return t;
  }

  private async make(hsm: Hsm): Promise<Transfer> {
    const pub = await hsm.importRsaWrappingKey(this.spki);
    try {
      const handle = await hsm.generateAesKey(32, TRANSFER_POLICY);
      try {
        const key = privateDecrypt({ key: this.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, await hsm.wrapRsaOaep(pub, handle, 'sha1'));
        return { hsm, handle, key, uses: 0, inFlight: 0, retired: false };
      } catch (err) {
        await hsm.destroy(handle).catch(() => undefined);
        throw err;
      }
    } finally {
      await hsm.destroy(pub).catch(() => undefined);
    }
  }

  private async retire(t: Transfer): Promise<void> {
    t.retired = true;
    if (t.inFlight === 0) await this.destroy(t);
  }

  private async destroy(t: Transfer): Promise<void> {
    if (t.key.length && t.key.some((b) => b !== 0)) {
      t.key.fill(0);
      this.onWiped?.([t.key]);
    }
    await t.hsm.destroy(t.handle).catch(() => undefined);
  }
}

/** Length of the DER SEQUENCE at the start of `der` (a PKCS#8 PrivateKeyInfo), header included. */
function derLength(der: Buffer): number {
  if (der.length < 2 || der[0] !== 0x30) throw new KeyhubError('KEY_LENGTH_INVALID', 'the private key read out of the token is not a DER SEQUENCE');
  const first = der[1];
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n < 1 || n > 3 || der.length < 2 + n) throw new KeyhubError('KEY_LENGTH_INVALID', 'the private key read out of the token has a bad DER length');
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + der[2 + i];
  return 2 + n + len;
}
