import { KeyhubError } from '../errors';
import { ckrName } from '../hsm/pkcs11/errors';
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
} from '../hsm/hsm';
import { Counter, Histogram, LATENCY_BUCKETS_SECONDS, timed, type Registry } from './metrics';

export interface HsmMetrics {
  operationSeconds: Histogram<'operation' | 'outcome'>;
  errors: Counter<'operation' | 'ckr'>;
}

// One set per registry: a second instrumented token in the same process reuses it instead of failing on a duplicate name.
const byRegistry = new WeakMap<Registry, HsmMetrics>();

export function hsmMetrics(registry: Registry): HsmMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = {
      operationSeconds: new Histogram({
        name: 'keyhub_hsm_operation_seconds',
        help: 'Duration of PKCS#11 operations through the HSM port',
        labelNames: ['operation', 'outcome'],
        buckets: LATENCY_BUCKETS_SECONDS,
        registers: [registry],
      }),
      errors: new Counter({
        name: 'keyhub_hsm_errors_total',
        help: 'Failed HSM operations by PKCS#11 return code (ckr="none" when the failure was not a CKR_* code)',
        labelNames: ['operation', 'ckr'],
        registers: [registry],
      }),
    };
    byRegistry.set(registry, m);
  }
  return m;
}

/**
 * Decorates any Hsm so that every call is timed and every failure counted by
 * its CKR code. Only operation names and codes become labels: handles,
 * blobs and labels of keys stay out of the metrics.
 */
export class InstrumentedHsm implements Hsm {
  private readonly metrics: HsmMetrics;

  constructor(
    private readonly inner: Hsm,
    registry: Registry,
  ) {
    this.metrics = hsmMetrics(registry);
  }

  get tokenLabel(): string {
    return this.inner.tokenLabel;
  }

  get concurrency(): number {
    return this.inner.concurrency;
  }

  private async call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await timed(this.metrics.operationSeconds, { operation }, work);
    } catch (err) {
      this.metrics.errors.inc({ operation, ckr: (err instanceof KeyhubError ? err.ckr : ckrName(err)) ?? 'none' });
      throw err;
    }
  }

  generateAesKey(lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('generate_aes_key', () => this.inner.generateAesKey(lengthBytes, policy));
  }

  generateSecretKey(type: SecretKeyType, lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('generate_secret_key', () => this.inner.generateSecretKey(type, lengthBytes, policy));
  }

  generateKeyPair(spec: KeyPairSpec, policy: { private: KeyPolicy; public: KeyPolicy }): Promise<KeyPairHandles> {
    return this.call('generate_key_pair', () => this.inner.generateKeyPair(spec, policy));
  }

  createPublicKey(spki: Buffer, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('create_public_key', () => this.inner.createPublicKey(spki, policy));
  }

  createAesKey(value: Buffer, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('create_aes_key', () => this.inner.createAesKey(value, policy));
  }

  unwrapKwpAs(kek: KeyHandle, blob: Buffer, keyType: WrappedKeyType, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('unwrap_kwp', () => this.inner.unwrapKwpAs(kek, blob, keyType, keyLengthBytes, policy));
  }

  tdesEcbEncrypt(key: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.call('tdes_ecb_encrypt', () => this.inner.tdesEcbEncrypt(key, data));
  }

  signWithPrivateKey(privateKey: KeyHandle, keyType: PairKeyType, data: Buffer): Promise<Buffer> {
    return this.call('sign_with_private_key', () => this.inner.signWithPrivateKey(privateKey, keyType, data));
  }

  generateEcP256KeyPair(policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
    return this.call('generate_ec_p256_key_pair', () => this.inner.generateEcP256KeyPair(policy));
  }

  generateRsaTransportKeyPair(bits: number, policy: { token: boolean; label: string; id: Buffer; unwrapTemplate?: UnwrapTemplate }): Promise<KeyPairHandles> {
    return this.call('generate_rsa_transport_key_pair', () => this.inner.generateRsaTransportKeyPair(bits, policy));
  }

  publicKeySpki(publicKey: KeyHandle): Promise<Buffer> {
    return this.call('public_key_spki', () => this.inner.publicKeySpki(publicKey));
  }

  importRsaWrappingKey(spki: Buffer): Promise<KeyHandle> {
    return this.call('import_rsa_wrapping_key', () => this.inner.importRsaWrappingKey(spki));
  }

  wrapKwp(kek: KeyHandle, key: KeyHandle): Promise<Buffer> {
    return this.call('wrap_kwp', () => this.inner.wrapKwp(kek, key));
  }

  unwrapKwp(kek: KeyHandle, blob: Buffer, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('unwrap_kwp', () => this.inner.unwrapKwp(kek, blob, keyLengthBytes, policy));
  }

  wrapRsaOaep(wrappingKey: KeyHandle, key: KeyHandle, hash: OaepHash): Promise<Buffer> {
    return this.call('wrap_rsa_oaep', () => this.inner.wrapRsaOaep(wrappingKey, key, hash));
  }

  unwrapRsaOaep(unwrappingKey: KeyHandle, blob: Buffer, hash: OaepHash, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('unwrap_rsa_oaep', () => this.inner.unwrapRsaOaep(unwrappingKey, blob, hash, policy));
  }

  translateKwp(t: KwpTranslation): Promise<Buffer[]> {
    return this.call('translate_kwp', () => this.inner.translateKwp(t));
  }

  signDigestEcdsa(privateKey: KeyHandle, digest: Buffer): Promise<Buffer> {
    return this.call('sign_digest_ecdsa', () => this.inner.signDigestEcdsa(privateKey, digest));
  }

  generateEd25519KeyPair(policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles> {
    return this.call('generate_ed25519_key_pair', () => this.inner.generateEd25519KeyPair(policy));
  }

  signEddsa(privateKey: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.call('sign_eddsa', () => this.inner.signEddsa(privateKey, data));
  }

  ed25519PublicKey(publicKey: KeyHandle): Promise<Buffer> {
    return this.call('ed25519_public_key', () => this.inner.ed25519PublicKey(publicKey));
  }

  aesCmac(key: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.call('aes_cmac', () => this.inner.aesCmac(key, data));
  }

  aesEcb(key: KeyHandle, data: Buffer, direction: 'encrypt' | 'decrypt'): Promise<Buffer> {
    return this.call(`aes_ecb_${direction}`, () => this.inner.aesEcb(key, data, direction));
  }

  generateHmacKey(lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle> {
    return this.call('generate_hmac_key', () => this.inner.generateHmacKey(lengthBytes, policy));
  }

  hmacSha256(key: KeyHandle, data: Buffer): Promise<Buffer> {
    return this.call('hmac_sha256', () => this.inner.hmacSha256(key, data));
  }

  verifyHmacSha256(key: KeyHandle, data: Buffer, tag: Buffer): Promise<boolean> {
    return this.call('verify_hmac_sha256', () => this.inner.verifyHmacSha256(key, data, tag));
  }

  copyToSession(handle: KeyHandle): Promise<KeyHandle> {
    return this.call('copy_to_session', () => this.inner.copyToSession(handle));
  }

  findKeys(query: KeyQuery): Promise<KeyHandle[]> {
    return this.call('find_keys', () => this.inner.findKeys(query));
  }

  keyInfo(handle: KeyHandle): Promise<KeyInfo> {
    return this.call('key_info', () => this.inner.keyInfo(handle));
  }

  destroy(handle: KeyHandle): Promise<void> {
    return this.call('destroy', () => this.inner.destroy(handle));
  }

  setUsages(handle: KeyHandle, usages: UsageFlags): Promise<void> {
    return this.call('set_usages', () => this.inner.setUsages(handle, usages));
  }

  ping(): Promise<void> {
    return this.call('ping', () => this.inner.ping());
  }

  close(): Promise<void> {
    return this.call('close', () => this.inner.close());
  }
}
