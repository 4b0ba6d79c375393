import { createPublicKey } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { mapConcurrent } from '../concurrency';
import { KeyhubError } from '../errors';
import { readSecret } from '../secrets';
import { hsmConfigSchema, type HsmConfig, type HsmConfigInput } from './config';
import type { Hsm, KeyClass, KeyHandle, KeyInfo, KeyPairHandles, KeyPolicy, KeyQuery, KeyType, KwpTranslation, OaepHash, WrappedAesKey } from './hsm';
import { pairAt, planTranslation, TRANSIENT_KEK_POLICY, TRANSIENT_KEY_POLICY } from './kwp-translation-plan';
import { checkTranslation, KwpTranslator } from './kwp-translator';
import { aesUnwrapTemplate, checkKwpBlob, policyAttributes } from './pkcs11-templates';
import { SessionPool } from './session-pool';

const P = pkcs11js;

/** DER of OID 1.2.840.10045.3.1.7 (prime256v1). */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
/** CKZ_DATA_SPECIFIED: OAEP label source; pkcs11js does not export it. */
const CKZ_DATA_SPECIFIED = 1;

const CKR_NAMES = new Map<number, string>(
  Object.entries(pkcs11js)
    .filter(([name, value]) => name.startsWith('CKR_') && typeof value === 'number')
    .map(([name, value]) => [value as number, name]),
);

/**
 * C_Initialize must happen once per process and module; several Pkcs11Hsm
 * instances (one per token) share the loaded module and finalize it when the
 * last one closes.
 */
const loadedModules = new Map<string, { lib: pkcs11js.PKCS11; users: number }>();

function acquireModule(path: string): pkcs11js.PKCS11 {
  const existing = loadedModules.get(path);
  if (existing) {
    existing.users++;
    return existing.lib;
  }
  const lib = new P.PKCS11();
  try {
    lib.load(path);
  } catch (err) {
    throw new KeyhubError('HSM_MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${path}`, { cause: err });
  }
  try {
    lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw hsmError(err, 'C_Initialize');
  }
  loadedModules.set(path, { lib, users: 1 });
  return lib;
}

function releaseModule(path: string): void {
  const entry = loadedModules.get(path);
  if (!entry) return;
  entry.users--;
  if (entry.users > 0) return;
  loadedModules.delete(path);
  try {
    entry.lib.C_Finalize();
  } catch {
    // Finalizing at shutdown: nothing useful to do with a failure.
  }
  entry.lib.close();
}

export function ckrName(err: unknown): string | undefined {
  if (err instanceof P.Pkcs11Error) return CKR_NAMES.get(err.code) ?? `CKR_0x${err.code.toString(16)}`;
  if (err instanceof Error) {
    const match = /\b(CKR_[A-Z_]+)\b/.exec(err.message);
    if (match) return match[1];
  }
  return undefined;
}

export function hsmError(err: unknown, operation: string): KeyhubError {
  if (err instanceof KeyhubError) return err;
  const ckr = ckrName(err);
  if (ckr === 'CKR_PIN_INCORRECT' || ckr === 'CKR_PIN_LEN_RANGE' || ckr === 'CKR_PIN_INVALID') {
    return new KeyhubError('HSM_PIN_INCORRECT', `${operation}: token refused the PIN (${ckr})`, { ckr, cause: err });
  }
  if (ckr === 'CKR_PIN_LOCKED') return new KeyhubError('HSM_PIN_INCORRECT', `${operation}: PIN is locked (${ckr})`, { ckr, cause: err });
  return new KeyhubError('HSM_ERROR', `${operation} failed: ${ckr ?? 'unknown error'}`, { ckr, cause: err });
}

function readUlong(buf: Buffer): number {
  if (buf.length === 0) return 0;
  return buf.length >= 8 ? Number(buf.readBigUInt64LE(0)) : buf.readUInt32LE(0);
}

const FLAG_ATTRIBUTES = {
  sensitive: P.CKA_SENSITIVE,
  extractable: P.CKA_EXTRACTABLE,
  encrypt: P.CKA_ENCRYPT,
  decrypt: P.CKA_DECRYPT,
  sign: P.CKA_SIGN,
  verify: P.CKA_VERIFY,
  wrap: P.CKA_WRAP,
  unwrap: P.CKA_UNWRAP,
} as const;

const bool = (buf: Buffer | undefined): boolean => buf !== undefined && buf.length > 0 && buf[0] !== 0;


const CLASS_BY_NAME: Record<Exclude<KeyClass, 'other'>, number> = {
  secret: P.CKO_SECRET_KEY,
  private: P.CKO_PRIVATE_KEY,
  public: P.CKO_PUBLIC_KEY,
};

function className(value: number): KeyClass {
  if (value === P.CKO_SECRET_KEY) return 'secret';
  if (value === P.CKO_PRIVATE_KEY) return 'private';
  if (value === P.CKO_PUBLIC_KEY) return 'public';
  return 'other';
}

function keyTypeName(value: number): KeyType {
  if (value === P.CKK_AES) return 'aes';
  if (value === P.CKK_EC) return 'ec';
  if (value === P.CKK_RSA) return 'rsa';
  if (value === P.CKK_GENERIC_SECRET) return 'generic';
  if (value === P.CKK_DES3) return 'des3';
  return 'other';
}

function oaepMechanism(hash: OaepHash): pkcs11js.Mechanism {
  const params: pkcs11js.RsaOAEP = {
    type: P.CK_PARAMS_RSA_OAEP,
    hashAlg: hash === 'sha1' ? P.CKM_SHA_1 : P.CKM_SHA256,
    mgf: hash === 'sha1' ? P.CKG_MGF1_SHA1 : P.CKG_MGF1_SHA256,
    source: CKZ_DATA_SPECIFIED,
  };
  return { mechanism: P.CKM_RSA_PKCS_OAEP, parameter: params };
}

/** Hsm port over a PKCS#11 module, one token, a pool of logged-in sessions. */
export class Pkcs11Hsm implements Hsm {
  private closed = false;
  private readonly scratchBuffers = new WeakMap<Buffer, Buffer>();
  private readonly translator?: KwpTranslator;

  private constructor(
    private readonly lib: pkcs11js.PKCS11,
    private readonly config: HsmConfig,
    private readonly pool: SessionPool<Buffer>,
    slot: Buffer,
  ) {
    if (config.translateWorker) {
      this.translator = new KwpTranslator({
        init: { module: config.module, slot, kwpMechanism: config.kwpMechanism },
        toError: hsmError,
        closeSession: (session) => closeQuietly(lib, session),
      });
    }
  }

  get tokenLabel(): string {
    return this.config.tokenLabel;
  }

  get concurrency(): number {
    return this.pool.size;
  }

  static async open(input: HsmConfigInput): Promise<Pkcs11Hsm> {
    const config = hsmConfigSchema.parse(input);
    const pin = readSecret({ env: config.pinEnv, file: config.pinFile }, `PIN for token "${config.tokenLabel}"`);
    const lib = acquireModule(config.module);
    const sessions: Buffer[] = [];
    let slot: Buffer;
    try {
      slot = findSlot(lib, config.tokenLabel);
      const flags = P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION;
      for (let i = 0; i < config.sessions; i++) sessions.push(lib.C_OpenSession(slot, flags));
      try {
        // Login is per application and token: one session logs in all of them. A second
        // instance for an already logged-in token therefore cannot re-check its PIN.
        lib.C_Login(sessions[0], P.CKU_USER, pin);
      } catch (err) {
        if (ckrName(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw hsmError(err, 'C_Login');
      }
    } catch (err) {
      for (const s of sessions) closeQuietly(lib, s);
      releaseModule(config.module);
      throw err instanceof KeyhubError ? err : hsmError(err, 'open token');
    }
    return new Pkcs11Hsm(lib, config, new SessionPool(sessions), slot);
  }

  async generateAesKey(lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    const template = [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_VALUE_LEN, value: lengthBytes },
      ...policyAttributes(policy),
    ];
    return this.run('C_GenerateKey', (s) => this.lib.C_GenerateKeyAsync(s, { mechanism: P.CKM_AES_KEY_GEN }, template));
  }

  async generateEcP256KeyPair(policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
    const pub = [
      { type: P.CKA_TOKEN, value: policy.token },
      { type: P.CKA_LABEL, value: policy.label },
      { type: P.CKA_ID, value: policy.id },
      { type: P.CKA_EC_PARAMS, value: P256_PARAMS },
      { type: P.CKA_VERIFY, value: true },
    ];
    const priv = policyAttributes({ token: policy.token, label: policy.label, id: policy.id, sign: true }, true);
    return this.run('C_GenerateKeyPair', (s) => this.lib.C_GenerateKeyPairAsync(s, { mechanism: P.CKM_EC_KEY_PAIR_GEN }, pub, priv));
  }

  async generateRsaTransportKeyPair(bits: number, policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
    const pub = [
      { type: P.CKA_TOKEN, value: policy.token },
      { type: P.CKA_LABEL, value: policy.label },
      { type: P.CKA_ID, value: policy.id },
      { type: P.CKA_MODULUS_BITS, value: bits },
      { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
      { type: P.CKA_WRAP, value: true },
      { type: P.CKA_ENCRYPT, value: false },
      { type: P.CKA_VERIFY, value: false },
    ];
    const priv = policyAttributes({ token: policy.token, label: policy.label, id: policy.id, unwrap: true }, true);
    return this.run('C_GenerateKeyPair', (s) => this.lib.C_GenerateKeyPairAsync(s, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN }, pub, priv));
  }

  async publicKeySpki(publicKey: KeyHandle): Promise<Buffer> {
    return this.run('C_GetAttributeValue', async (s) => {
      const [type] = this.lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_KEY_TYPE }]);
      const keyType = readUlong(type.value as Buffer);
      if (keyType === P.CKK_EC) {
        const [point] = this.lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_EC_POINT }]);
        const raw = unwrapDerOctetString(point.value as Buffer);
        if (raw.length !== 65 || raw[0] !== 4) throw new KeyhubError('HSM_ERROR', 'unexpected EC point encoding');
        const jwk = { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') };
        return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' });
      }
      if (keyType === P.CKK_RSA) {
        const [n, e] = this.lib.C_GetAttributeValue(s, publicKey, [{ type: P.CKA_MODULUS }, { type: P.CKA_PUBLIC_EXPONENT }]);
        const jwk = { kty: 'RSA', n: stripLeadingZeros(n.value as Buffer).toString('base64url'), e: stripLeadingZeros(e.value as Buffer).toString('base64url') };
        return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' });
      }
      throw new KeyhubError('HSM_ERROR', `public key type ${keyType} is not supported`);
    });
  }

  async importRsaWrappingKey(spki: Buffer): Promise<KeyHandle> {
    const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    if (jwk.kty !== 'RSA' || !jwk.n || !jwk.e) throw new KeyhubError('MESSAGE_MALFORMED', 'wrapping key is not an RSA public key');
    const template = [
      { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_MODULUS, value: Buffer.from(jwk.n, 'base64url') },
      { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from(jwk.e, 'base64url') },
      { type: P.CKA_WRAP, value: true },
      { type: P.CKA_ENCRYPT, value: false },
      { type: P.CKA_VERIFY, value: false },
    ];
    return this.run('C_CreateObject', async (s) => this.lib.C_CreateObject(s, template));
  }

  async wrapKwp(kek: KeyHandle, key: KeyHandle): Promise<Buffer> {
    // Output goes to the session's scratch buffer (one call per session at a time) and only the
    // blob is copied out: a fresh 4 KiB buffer per wrap was a visible share of GC at fan-out rates.
    return this.run('C_WrapKey', async (s) => Buffer.from(await this.lib.C_WrapKeyAsync(s, { mechanism: this.config.kwpMechanism }, kek, key, this.scratch(s))));
  }

  async unwrapKwp(kek: KeyHandle, blob: Buffer, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    checkKwpBlob(blob, keyLengthBytes);
    return this.run('C_UnwrapKey', (s) => this.lib.C_UnwrapKeyAsync(s, { mechanism: this.config.kwpMechanism }, kek, blob, aesUnwrapTemplate(policy)));
  }

  async wrapRsaOaep(wrappingKey: KeyHandle, key: KeyHandle, hash: OaepHash): Promise<Buffer> {
    return this.run('C_WrapKey', (s) => this.lib.C_WrapKeyAsync(s, oaepMechanism(hash), wrappingKey, key, Buffer.alloc(1024)));
  }

  async unwrapRsaOaep(unwrappingKey: KeyHandle, blob: Buffer, hash: OaepHash, policy: KeyPolicy): Promise<KeyHandle> {
    return this.run('C_UnwrapKey', (s) => this.lib.C_UnwrapKeyAsync(s, oaepMechanism(hash), unwrappingKey, blob, aesUnwrapTemplate(policy)));
  }

  async translateKwp(t: KwpTranslation): Promise<Buffer[]> {
    if (this.translator) return this.translator.translate(t);
    if (this.closed) throw new KeyhubError('HSM_ERROR', 'translateKwp: HSM connection is closed');
    checkTranslation(t);
    // The same work with async calls on the pool, in the same order (see kwp-translation-plan.ts),
    // for modules kept off the worker thread.
    const { streamKeks, groups } = planTranslation(t.keks.length, t.keys.length, t.pairs);
    const kekPolicy = TRANSIENT_KEK_POLICY;
    const keyPolicy = TRANSIENT_KEY_POLICY;
    const live = new Set<KeyHandle>();
    const unwrap = async (k: WrappedAesKey, policy: KeyPolicy): Promise<KeyHandle> => {
      const h = await this.unwrapKwp(t.unwrappingKey, k.blob, k.lengthBytes, policy);
      live.add(h);
      return h;
    };
    const destroy = async (h: KeyHandle): Promise<void> => {
      live.delete(h);
      await this.destroy(h);
    };
    try {
      const resident = await mapConcurrent(streamKeks ? t.keys : t.keks, this.concurrency, (k) => unwrap(k, streamKeks ? keyPolicy : kekPolicy));
      const out = new Array<Buffer>(t.pairs.length / 2);
      await mapConcurrent(groups, this.concurrency, async (group) => {
        const streamed = await unwrap((streamKeks ? t.keks : t.keys)[group.streamed], streamKeks ? kekPolicy : keyPolicy);
        for (const i of group.pairs) {
          const { kek, key } = pairAt(t.pairs, i);
          out[i] = streamKeks ? await this.wrapKwp(streamed, resident[key]) : await this.wrapKwp(resident[kek], streamed);
        }
        await destroy(streamed);
      });
      for (const h of resident) await destroy(h);
      return out;
    } finally {
      await mapConcurrent([...live], this.concurrency, (h) => this.destroy(h).catch(() => undefined));
    }
  }

  async signDigestEcdsa(privateKey: KeyHandle, digest: Buffer): Promise<Buffer> {
    return this.run('C_Sign', async (s) => {
      this.lib.C_SignInit(s, { mechanism: P.CKM_ECDSA }, privateKey);
      return this.lib.C_SignAsync(s, digest, Buffer.alloc(128));
    });
  }

  async aesCmac(key: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.run('C_Sign', async (s) => {
      this.lib.C_SignInit(s, { mechanism: P.CKM_AES_CMAC }, key);
      return this.lib.C_SignAsync(s, data, Buffer.alloc(16));
    });
  }

  async copyToSession(handle: KeyHandle): Promise<KeyHandle> {
    return this.run('C_CopyObject', async (s) => this.lib.C_CopyObject(s, handle, [{ type: P.CKA_TOKEN, value: false }]));
  }

  async findKeys(query: KeyQuery): Promise<KeyHandle[]> {
    const template: pkcs11js.Template = [];
    if (query.class && query.class !== 'other') template.push({ type: P.CKA_CLASS, value: CLASS_BY_NAME[query.class] });
    if (query.label !== undefined) template.push({ type: P.CKA_LABEL, value: query.label });
    if (query.id !== undefined) template.push({ type: P.CKA_ID, value: query.id });
    if (query.token !== undefined) template.push({ type: P.CKA_TOKEN, value: query.token });
    return this.run('C_FindObjects', async (s) => {
      this.lib.C_FindObjectsInit(s, template);
      try {
        const found: Buffer[] = [];
        for (;;) {
          const batch = this.lib.C_FindObjects(s, 256);
          if (batch.length === 0) break;
          found.push(...batch);
        }
        return found;
      } finally {
        this.lib.C_FindObjectsFinal(s);
      }
    });
  }

  async keyInfo(handle: KeyHandle): Promise<KeyInfo> {
    return this.run('C_GetAttributeValue', async (s) => {
      const [cls, type, label, id, token, priv] = this.lib.C_GetAttributeValue(s, handle, [
        { type: P.CKA_CLASS },
        { type: P.CKA_KEY_TYPE },
        { type: P.CKA_LABEL },
        { type: P.CKA_ID },
        { type: P.CKA_TOKEN },
        { type: P.CKA_PRIVATE },
      ]);
      const klass = className(readUlong(cls.value as Buffer));
      const info: KeyInfo = {
        handle,
        class: klass,
        keyType: keyTypeName(readUlong(type.value as Buffer)),
        label: (label.value as Buffer).toString('utf8'),
        id: Buffer.from(id.value as Buffer),
        token: bool(token.value as Buffer),
        private: bool(priv.value as Buffer),
        sensitive: false,
        extractable: false,
        encrypt: false,
        decrypt: false,
        sign: false,
        verify: false,
        wrap: false,
        unwrap: false,
      };
      if (klass === 'secret' || klass === 'private') {
        // Private keys have no CKA_ENCRYPT/VERIFY/WRAP; asking for them is an error on some tokens.
        const names = klass === 'secret'
          ? (['sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap'] as const)
          : (['sensitive', 'extractable', 'decrypt', 'sign', 'unwrap'] as const);
        const values = this.lib.C_GetAttributeValue(s, handle, names.map((n) => ({ type: FLAG_ATTRIBUTES[n] })));
        names.forEach((n, i) => {
          info[n] = bool(values[i].value as Buffer);
        });
      }
      if (klass === 'secret') {
        const [len] = this.lib.C_GetAttributeValue(s, handle, [{ type: P.CKA_VALUE_LEN }]);
        info.valueLen = readUlong(len.value as Buffer);
      }
      return info;
    });
  }

  async destroy(handle: KeyHandle): Promise<void> {
    await this.run('C_DestroyObject', async (s) => this.lib.C_DestroyObject(s, handle));
  }

  async ping(): Promise<void> {
    await this.run('C_GetSessionInfo', async (s) => {
      this.lib.C_GetSessionInfo(s);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.translator?.close();
    const sessions = await this.pool.drain();
    for (const s of sessions) closeQuietly(this.lib, s);
    releaseModule(this.config.module);
  }

  /** The session's output buffer for wraps; a session runs one call at a time (SessionPool). */
  private scratch(session: Buffer): Buffer {
    let buf = this.scratchBuffers.get(session);
    if (!buf) {
      buf = Buffer.alloc(WRAP_OUTPUT_MAX);
      this.scratchBuffers.set(session, buf);
    }
    return buf;
  }

  private async run<T>(operation: string, fn: (session: Buffer) => Promise<T>): Promise<T> {
    if (this.closed) throw new KeyhubError('HSM_ERROR', `${operation}: HSM connection is closed`);
    return this.pool.use(async (session) => {
      try {
        return await fn(session);
      } catch (err) {
        throw hsmError(err, operation);
      }
    });
  }
}

/** Largest wrapped blob accepted from C_WrapKey (AES-KWP of any key the hub holds fits with room to spare). */
const WRAP_OUTPUT_MAX = 4096;


function findSlot(lib: pkcs11js.PKCS11, label: string): Buffer {
  const slots = lib.C_GetSlotList(true);
  for (const slot of slots) {
    if (lib.C_GetTokenInfo(slot).label.trim() === label) return slot;
  }
  throw new KeyhubError('HSM_TOKEN_NOT_FOUND', `no token labelled "${label}" (${slots.length} tokens present)`);
}

function closeQuietly(lib: pkcs11js.PKCS11, session: Buffer): void {
  try {
    lib.C_CloseSession(session);
  } catch {
    // The session may already be gone with the token; nothing to recover.
  }
}

function unwrapDerOctetString(der: Buffer): Buffer {
  if (der[0] !== 0x04) return der;
  const len = der[1];
  if (len < 0x80) return der.subarray(2, 2 + len);
  const n = len & 0x7f;
  return der.subarray(2 + n);
}

function stripLeadingZeros(buf: Buffer): Buffer {
  let i = 0;
  while (i < buf.length - 1 && buf[i] === 0) i++;
  return buf.subarray(i);
}
