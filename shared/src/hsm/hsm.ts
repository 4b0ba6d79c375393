/**
 * The HSM port: the only way Keyhub code touches key material. Keys are
 * referred to by opaque handles; raw secret bytes never cross this interface
 * (wrapped blobs and public keys do).
 */
export type KeyHandle = Buffer;

export type OaepHash = 'sha1' | 'sha256';

export interface KeyPolicy {
  /** Persistent token object (true) or session object, gone when the session closes (false). */
  token: boolean;
  label?: string;
  id?: Buffer;
  /** Defaults to true: a secret is never readable in clear. */
  sensitive?: boolean;
  /** Defaults to false. */
  extractable?: boolean;
  /**
   * CKA_PRIVATE; defaults to true (only a logged-in session may use it).
   * False is meant for transient session objects of an application that is
   * always logged in: they are then visible to that application's sessions
   * only, as before, and SoftHSM2 no longer encrypts their value in its own
   * memory on every use (measured here: ~20 µs per wrap, ~30 µs per unwrap).
   */
  private?: boolean;
  encrypt?: boolean;
  decrypt?: boolean;
  sign?: boolean;
  verify?: boolean;
  wrap?: boolean;
  unwrap?: boolean;
  derive?: boolean;
  /**
   * CKA_MODIFIABLE / CKA_COPYABLE / CKA_DESTROYABLE; default true. Tokens
   * may refuse them where the object is made by an unwrap (SoftHSM2 does:
   * README, "HSM: what the token enforces").
   */
  modifiable?: boolean;
  copyable?: boolean;
  destroyable?: boolean;
  /** CKA_ALLOWED_MECHANISMS; absent: any mechanism its flags allow. Fixed once the object exists. */
  allowedMechanisms?: MechanismName[];
  /**
   * CKA_UNWRAP_TEMPLATE: what this key may unwrap. Every attribute named here
   * must be given, with this value, by each unwrap under the key, or the
   * token refuses it (CKR_TEMPLATE_INCONSISTENT). See key-classes.ts.
   */
  unwrapTemplate?: UnwrapTemplate;
}

/** Mechanisms by name; the adapter maps them to its token's codes (KWP is 0x210A in SoftHSM2, 0x210B elsewhere). */
export type MechanismName = 'kwp' | 'aes-cmac' | 'rsa-oaep' | 'hmac-sha256';

/**
 * Key types a wrapped blob can hold: a secret key, or (rsa, ec) a private
 * key as PKCS#8, which the token parses on unwrap.
 */
export type SecretKeyType = 'aes' | 'des2' | 'des3' | 'generic';
export type PairKeyType = 'rsa' | 'ec';
export type WrappedKeyType = SecretKeyType | PairKeyType;
export type EcCurveName = 'P-256' | 'P-384' | 'P-521';
export type KeyPairSpec = { type: 'rsa'; bits: number } | { type: 'ec'; curve: EcCurveName };

/** The attributes an unwrap template can fix. */
export interface UnwrapTemplate {
  /** CKA_CLASS; absent means secret (the first templates fixed it always), 'any' leaves it free. */
  class?: 'secret' | 'private' | 'any';
  keyType?: 'aes';
  token?: boolean;
  private?: boolean;
  sensitive?: boolean;
  extractable?: boolean;
  encrypt?: boolean;
  decrypt?: boolean;
  sign?: boolean;
  verify?: boolean;
  wrap?: boolean;
  unwrap?: boolean;
  derive?: boolean;
  allowedMechanisms?: MechanismName[];
}

/** PKCS#11 usage flags by name (CKA_ENCRYPT ... CKA_DERIVE); an absent one is left as it is. */
export type UsageFlags = Partial<Record<'encrypt' | 'decrypt' | 'sign' | 'verify' | 'wrap' | 'unwrap' | 'derive', boolean>>;

export type KeyClass = 'secret' | 'private' | 'public' | 'other';
export type KeyType = 'aes' | 'ec' | 'rsa' | 'generic' | 'des2' | 'des3' | 'other';

export interface KeyInfo {
  handle: KeyHandle;
  class: KeyClass;
  keyType: KeyType;
  label: string;
  id: Buffer;
  /** Length in bytes of a secret key, when the token reports it. */
  valueLen?: number;
  token: boolean;
  /** CKA_PRIVATE: only a logged-in session may use it. */
  private: boolean;
  sensitive: boolean;
  extractable: boolean;
  encrypt: boolean;
  decrypt: boolean;
  sign: boolean;
  verify: boolean;
  wrap: boolean;
  unwrap: boolean;
  derive: boolean;
}

export interface KeyQuery {
  class?: KeyClass;
  label?: string;
  id?: Buffer;
  token?: boolean;
}

export interface KeyPairHandles {
  publicKey: KeyHandle;
  privateKey: KeyHandle;
}

/** A wrapped key for `translateKwp`: an RFC 5649 blob and the length of the key inside. */
export interface WrappedAesKey {
  blob: Buffer;
  lengthBytes: number;
  /** What the blob holds; absent: an AES key (the fast path). Only keys may be other than AES, never KEKs. */
  keyType?: WrappedKeyType;
  /** HMAC-SHA256 tag over `data` (which names the blob and what it is), checked in the token before anything is unwrapped. */
  mac?: { data: Buffer; tag: Buffer };
}

/**
 * Re-wrapping many keys under many KEKs in one call, all of them stored
 * wrapped under one key of the token (the hub's master key). The KEKs and
 * keys exist in the token only as session objects for the length of the
 * call: KEKs wrap-only, keys extractable only by wrapping, both sensitive.
 */
export interface KwpTranslation {
  /** The key the keys are stored under. */
  unwrappingKey: KeyHandle;
  /** The key the KEKs are stored under; defaults to `unwrappingKey`. */
  kekUnwrappingKey?: KeyHandle;
  /** The key TDES and generic secrets are stored under (keyType des2, des3, generic). */
  secretUnwrappingKey?: KeyHandle;
  /** The key private keys are stored under (keyType rsa, ec). */
  privateUnwrappingKey?: KeyHandle;
  /**
   * HMAC-SHA256 key: when given, every KEK and key must carry a `mac`, and
   * all of them are verified before the first unwrap; one that fails ends
   * the call with ROW_MAC_INVALID (details: side and index).
   */
  macKey?: KeyHandle;
  keks: WrappedAesKey[];
  keys: WrappedAesKey[];
  /** Flat pairs of indexes: output i is keys[pairs[2i+1]] wrapped under keks[pairs[2i]]. */
  pairs: Uint32Array;
}

export interface Hsm {
  readonly tokenLabel: string;
  /** Sessions available for concurrent calls. */
  readonly concurrency: number;

  generateAesKey(lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle>;
  /** EC P-256 signing pair; the private key is sensitive and never extractable. */
  generateEcP256KeyPair(policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles>;
  /** RSA transport pair: the private key may only unwrap (OAEP), the public key only wrap. */
  generateRsaTransportKeyPair(bits: number, policy: { token: boolean; label: string; id: Buffer; unwrapTemplate?: UnwrapTemplate }): Promise<KeyPairHandles>;

  /** A secret key of any type Keyhub distributes (TDES: CKM_DES2/DES3_KEY_GEN, generic: CKM_GENERIC_SECRET_KEY_GEN). */
  generateSecretKey(type: SecretKeyType, lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle>;
  /** An RSA or EC pair; `policy.private` and `policy.public` give each half its attributes (private keys ignore encrypt/verify/wrap). */
  generateKeyPair(spec: KeyPairSpec, policy: { private: KeyPolicy; public: KeyPolicy }): Promise<KeyPairHandles>;
  /** Creates a public key object (RSA or EC) from DER SPKI; verify/encrypt/wrap and label/id from the policy. */
  createPublicKey(spki: Buffer, policy: KeyPolicy): Promise<KeyHandle>;
  /**
   * An AES key object from its value (C_CreateObject with CKA_VALUE). Only
   * for a key that exists in clear by nature: a root KEK combined from
   * custodians' components where the token has no way to combine them
   * itself (SoftHSM2 lacks CKM_XOR_BASE_AND_DATA). The caller wipes `value`.
   */
  createAesKey(value: Buffer, policy: KeyPolicy): Promise<KeyHandle>;
  /** AES-KWP unwrap of a key of any type: a secret key of `keyType`, or for rsa/ec a private key from the PKCS#8 inside. */
  unwrapKwpAs(kek: KeyHandle, blob: Buffer, keyType: WrappedKeyType, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle>;
  /** TDES-ECB encryption of whole 8-byte blocks (CKA_ENCRYPT): the TDES KCV. */
  tdesEcbEncrypt(key: KeyHandle, data: Buffer): Promise<Buffer>;
  /**
   * Signs `data` with a private key: RSA with PKCS#1 v1.5 over SHA-256
   * (CKM_SHA256_RSA_PKCS), EC with ECDSA over its SHA-256 (raw r||s). For
   * proving, in the token, that a private key matches a public key.
   */
  signWithPrivateKey(privateKey: KeyHandle, keyType: PairKeyType, data: Buffer): Promise<Buffer>;

  /** DER SubjectPublicKeyInfo of an EC or RSA public key object. */
  publicKeySpki(publicKey: KeyHandle): Promise<Buffer>;
  /** Imports an RSA public key (DER SPKI) as a wrap-only session object. */
  importRsaWrappingKey(spki: Buffer): Promise<KeyHandle>;

  /** AES key wrap with padding (RFC 5649). */
  wrapKwp(kek: KeyHandle, key: KeyHandle): Promise<Buffer>;
  unwrapKwp(kek: KeyHandle, blob: Buffer, keyLengthBytes: number, policy: KeyPolicy): Promise<KeyHandle>;
  wrapRsaOaep(wrappingKey: KeyHandle, key: KeyHandle, hash: OaepHash): Promise<Buffer>;
  unwrapRsaOaep(unwrappingKey: KeyHandle, blob: Buffer, hash: OaepHash, policy: KeyPolicy): Promise<KeyHandle>;

  /**
   * One AES-KWP blob per pair of `t.pairs`, in order. Each KEK and key is
   * unwrapped once per call and destroyed before it returns, also on failure.
   */
  translateKwp(t: KwpTranslation): Promise<Buffer[]>;

  /** ECDSA over a caller-computed digest; returns raw r||s. */
  signDigestEcdsa(privateKey: KeyHandle, digest: Buffer): Promise<Buffer>;
  /** Ed25519 signing pair (CKM_EC_EDWARDS_KEY_PAIR_GEN); the private key is sensitive and never extractable. */
  generateEd25519KeyPair(policy: { token: boolean; label: string; id: Buffer }): Promise<KeyPairHandles>;
  /** Pure Ed25519 (CKM_EDDSA) over the whole message; 64 bytes. */
  signEddsa(privateKey: KeyHandle, data: Buffer): Promise<Buffer>;
  /** The raw 32 bytes of an Ed25519 public key object. */
  ed25519PublicKey(publicKey: KeyHandle): Promise<Buffer>;
  aesCmac(key: KeyHandle, data: Buffer): Promise<Buffer>;
  /** Raw AES-ECB over whole blocks (CKA_ENCRYPT / CKA_DECRYPT): for comparing keys in the token, never for data. */
  aesEcb(key: KeyHandle, data: Buffer, direction: 'encrypt' | 'decrypt'): Promise<Buffer>;
  /** A generic secret for HMAC-SHA256 (sign and verify only, whatever the policy's other flags say). */
  generateHmacKey(lengthBytes: number, policy: KeyPolicy): Promise<KeyHandle>;
  hmacSha256(key: KeyHandle, data: Buffer): Promise<Buffer>;
  /** Verified in the token; false when the tag does not match (CKR_SIGNATURE_INVALID / CKR_SIGNATURE_LEN_RANGE). */
  verifyHmacSha256(key: KeyHandle, data: Buffer, tag: Buffer): Promise<boolean>;

  /**
   * A session object copy of an object (C_CopyObject, CKA_TOKEN false): same
   * value and attributes, gone when the sessions close. Tokens may refuse
   * (CKA_COPYABLE false): callers keep using the original then.
   */
  copyToSession(handle: KeyHandle): Promise<KeyHandle>;
  findKeys(query: KeyQuery): Promise<KeyHandle[]>;
  keyInfo(handle: KeyHandle): Promise<KeyInfo>;
  destroy(handle: KeyHandle): Promise<void>;
  /**
   * Switches the named usage flags of an existing object (C_SetAttributeValue):
   * site lifecycle commands. Tokens may refuse (CKA_MODIFIABLE false, or a
   * flag they fix): the error keeps its CKR code.
   */
  setUsages(handle: KeyHandle, usages: UsageFlags): Promise<void>;
  /** Cheap liveness check of the token and a pooled session; touches no objects. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
