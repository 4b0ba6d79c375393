import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import { readSecret } from '../../secrets';
import { hsmConfigSchema, type HsmConfig, type HsmConfigInput } from '../config';
import type {
  Hsm,
  KeyHandle,
  KeyInfo,
  KeyPairHandles,
  KeyPairSpec,
  KeyPolicy,
  KeyQuery,
  KwpTranslation,
  OaepHash,
  PairKeyType,
  SecretKeyType,
  UnwrapTemplate,
  UsageFlags,
  WrappedKeyType,
} from '../hsm';
import { hsmError } from './errors';
import { createAesKeyObject, generateAesKey, generateEcP256KeyPair, generateHmacKey, generateKeyPair, generateRsaTransportKeyPair, generateSecretKey, importRsaWrappingKey } from './key-generation';
import { checkTranslation, KwpTranslator } from './kwp-translator';
import { createPublicKeyObject, findObjects, readKeyInfo, readPublicKeySpki } from './objects';
import { acquireModule, closeQuietly, openLoggedInSessions, releaseModule } from './sessions';
import { SessionPool } from './session-pool';
import { setUsageFlags } from './usages';
import { aesCmac, aesEcb, hmacSha256, signDigestEcdsa, signWithPrivateKey, tdesEcbEncrypt, verifyHmacSha256Sync } from './signing';
import { generateEd25519KeyPair, readEd25519PublicKey, signEddsa } from './eddsa';
import { aesUnwrapTemplate, checkKwpBlob, unwrapTemplateFor } from './templates';
import { oaepMechanism, translateOnPool, WRAP_OUTPUT_MAX } from './wrapping';

export { ckrName, hsmError } from './errors';

/**
 * Hsm port over a PKCS#11 module, one token, a pool of logged-in sessions.
 * Each call borrows a session from the pool; the PKCS#11 work itself lives
 * in the files beside this one, by concern: sessions (module, login),
 * key-generation, wrapping (KWP, RSA-OAEP, translation), signing (ECDSA,
 * CMAC), objects (search, attributes, public keys), errors (CKR_* codes).
 */
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
    let opened: { slot: Buffer; sessions: Buffer[] };
    try {
      opened = openLoggedInSessions(lib, config.tokenLabel, config.sessions, pin);
    } catch (err) {
      releaseModule(config.module);
      throw err instanceof KeyhubError ? err : hsmError(err, 'open token');
    }
    return new Pkcs11Hsm(lib, config, new SessionPool(opened.sessions), opened.slot);
  }

  async generateAesKey(lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.run('C_GenerateKey', (s) => generateAesKey(this.lib, s, lengthBytes, policy, this.config.kwpMechanism));
  }

  async generateSecretKey(type: SecretKeyType, lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.run('C_GenerateKey', (s) => generateSecretKey(this.lib, s, type, lengthBytes, policy, this.config.kwpMechanism));
  }

  async generateKeyPair(spec: KeyPairSpec, policy: { private: KeyPolicy; public: KeyPolicy }): Promise<KeyPairHandles> {
    return this.run('C_GenerateKeyPair', (s) => generateKeyPair(this.lib, s, spec, policy, this.config.kwpMechanism));
  }

  async createPublicKey(spki: Buffer, policy: KeyPolicy): Promise<KeyHandle> {
    return this.run('C_CreateObject', async (s) => createPublicKeyObject(this.lib, s, spki, policy));
  }

  async createAesKey(value: Buffer, policy: KeyPolicy): Promise<KeyHandle> {
    return this.run('C_CreateObject', async (s) => createAesKeyObject(this.lib, s, value, policy, this.config.kwpMechanism));
  }

  async unwrapKwpAs(kek: KeyHandle, blob: Buffer, keyType: WrappedKeyType, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    checkKwpBlob(blob, keyLengthBytes, keyType);
    return this.run('C_UnwrapKey', (s) => this.lib.C_UnwrapKeyAsync(s, { mechanism: this.config.kwpMechanism }, kek, blob, unwrapTemplateFor(keyType, policy, this.config.kwpMechanism)));
  }

  async tdesEcbEncrypt(key: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.run('C_Encrypt', (s) => tdesEcbEncrypt(this.lib, s, key, data));
  }

  async signWithPrivateKey(privateKey: KeyHandle, keyType: PairKeyType, data: Buffer): Promise<Buffer> {
    return this.run('C_Sign', (s) => signWithPrivateKey(this.lib, s, privateKey, keyType, data));
  }

  async aesEcb(key: KeyHandle, data: Buffer, direction: 'encrypt' | 'decrypt'): Promise<Buffer> {
    return this.run(direction === 'encrypt' ? 'C_Encrypt' : 'C_Decrypt', async (s) => aesEcb(this.lib, s, key, data, direction));
  }

  async generateHmacKey(lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.run('C_GenerateKey', (s) => generateHmacKey(this.lib, s, lengthBytes, policy, this.config.kwpMechanism));
  }

  async hmacSha256(key: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.run('C_Sign', (s) => hmacSha256(this.lib, s, key, data));
  }

  async verifyHmacSha256(key: KeyHandle, data: Buffer, tag: Buffer): Promise<boolean> {
    return this.run('C_Verify', async (s) => verifyHmacSha256Sync(this.lib, s, key, data, tag));
  }

  async generateEcP256KeyPair(policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
    return this.run('C_GenerateKeyPair', (s) => generateEcP256KeyPair(this.lib, s, policy));
  }

  async generateRsaTransportKeyPair(bits: number, policy: { token: boolean; label: string; id: Buffer; unwrapTemplate?: UnwrapTemplate }): Promise<KeyPairHandles> {
    return this.run('C_GenerateKeyPair', (s) => generateRsaTransportKeyPair(this.lib, s, bits, policy, this.config.kwpMechanism));
  }

  async publicKeySpki(publicKey: KeyHandle): Promise<Buffer> {
    return this.run('C_GetAttributeValue', async (s) => readPublicKeySpki(this.lib, s, publicKey));
  }

  async importRsaWrappingKey(spki: Buffer): Promise<KeyHandle> {
    return this.run('C_CreateObject', async (s) => importRsaWrappingKey(this.lib, s, spki));
  }

  async wrapKwp(kek: KeyHandle, key: KeyHandle): Promise<Buffer> {
    // Output goes to the session's scratch buffer (one call per session at a time) and only the
    // blob is copied out: a fresh 4 KiB buffer per wrap was a visible share of GC at fan-out rates.
    return this.run('C_WrapKey', async (s) => Buffer.from(await this.lib.C_WrapKeyAsync(s, { mechanism: this.config.kwpMechanism }, kek, key, this.scratch(s))));
  }

  async unwrapKwp(kek: KeyHandle, blob: Buffer, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    checkKwpBlob(blob, keyLengthBytes);
    return this.run('C_UnwrapKey', (s) => this.lib.C_UnwrapKeyAsync(s, { mechanism: this.config.kwpMechanism }, kek, blob, aesUnwrapTemplate(policy, this.config.kwpMechanism)));
  }

  async wrapRsaOaep(wrappingKey: KeyHandle, key: KeyHandle, hash: OaepHash): Promise<Buffer> {
    return this.run('C_WrapKey', (s) => this.lib.C_WrapKeyAsync(s, oaepMechanism(hash), wrappingKey, key, Buffer.alloc(1024)));
  }

  async unwrapRsaOaep(unwrappingKey: KeyHandle, blob: Buffer, hash: OaepHash, policy: KeyPolicy): Promise<KeyHandle> {
    return this.run('C_UnwrapKey', (s) => this.lib.C_UnwrapKeyAsync(s, oaepMechanism(hash), unwrappingKey, blob, aesUnwrapTemplate(policy, this.config.kwpMechanism)));
  }

  async translateKwp(t: KwpTranslation): Promise<Buffer[]> {
    if (this.translator) return this.translator.translate(t);
    if (this.closed) throw new KeyhubError('HSM_ERROR', 'translateKwp: HSM connection is closed');
    checkTranslation(t);
    return translateOnPool(this, t);
  }

  async signDigestEcdsa(privateKey: KeyHandle, digest: Buffer): Promise<Buffer> {
    return this.run('C_Sign', async (s) => signDigestEcdsa(this.lib, s, privateKey, digest));
  }

  async generateEd25519KeyPair(policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
    return this.run('C_GenerateKeyPair', (s) => generateEd25519KeyPair(this.lib, s, policy));
  }

  async signEddsa(privateKey: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.run('C_Sign', async (s) => signEddsa(this.lib, s, privateKey, data));
  }

  async ed25519PublicKey(publicKey: KeyHandle): Promise<Buffer> {
    return this.run('C_GetAttributeValue', async (s) => readEd25519PublicKey(this.lib, s, publicKey));
  }

  async aesCmac(key: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.run('C_Sign', async (s) => aesCmac(this.lib, s, key, data));
  }

  async copyToSession(handle: KeyHandle): Promise<KeyHandle> {
    return this.run('C_CopyObject', async (s) => this.lib.C_CopyObject(s, handle, [{ type: pkcs11js.CKA_TOKEN, value: false }]));
  }

  async findKeys(query: KeyQuery): Promise<KeyHandle[]> {
    return this.run('C_FindObjects', async (s) => findObjects(this.lib, s, query));
  }

  async keyInfo(handle: KeyHandle): Promise<KeyInfo> {
    return this.run('C_GetAttributeValue', async (s) => readKeyInfo(this.lib, s, handle));
  }

  async destroy(handle: KeyHandle): Promise<void> {
    await this.run('C_DestroyObject', async (s) => this.lib.C_DestroyObject(s, handle));
  }

  async setUsages(handle: KeyHandle, usages: UsageFlags): Promise<void> {
    await this.run('C_SetAttributeValue', async (s) => setUsageFlags(this.lib, s, handle, usages));
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
