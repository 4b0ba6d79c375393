/**
 * The wrapping keys of Keyhub, one per attribute class, and what the token
 * lets each of them unwrap (CKA_UNWRAP_TEMPLATE). A template is one fixed set
 * of attribute values per key (SoftHSM2 requires each attribute it names to
 * be given with exactly that value), so keys that must come out of an unwrap
 * with different attributes need different unwrapping keys:
 *
 * | key | where | unwraps, as the token enforces it |
 * |---|---|---|
 * | `keyhub-hmk` (key store) | hub | AES key versions: session, not private, sensitive, extractable (only so they can be re-wrapped), no usage at all, AES-KWP only |
 * | `keyhub-hmk-secret` (secret store) | hub | other secret key versions (TDES, HMAC, generic): the same attributes, any secret key type |
 * | `keyhub-hmk-private` (private key store) | hub | private key versions (RSA, EC; PKCS#8 inside the blob): the same attributes, class private |
 * | `keyhub-hmk-kek` (KEK store) | hub | root KEKs: session, not private, sensitive, never extractable, wrap only, AES-KWP only |
 * | transport key (RSA) | site, until the root KEK is in | the root KEK: sensitive, never extractable, no encrypt/decrypt/wrap/verify/derive, AES-KWP and CMAC (the KCV) only |
 * | root KEK, HSM import class | site | delivered keys, secret or private: sensitive, never extractable |
 * | transit KEK class | site, for keystore and cloud targets (not created yet) | delivered keys as session objects, sensitive |
 *
 * The master keys themselves: sensitive, never extractable, wrap and unwrap
 * only, AES-KWP only, not modifiable, not copyable. CKA_ALLOWED_MECHANISMS
 * cannot change once an object exists (SoftHSM2: CKR_ATTRIBUTE_READ_ONLY on
 * set and on copy), so a KEK that the hub unwraps can never encrypt or
 * decrypt, even if someone switches CKA_DECRYPT on (which SoftHSM2 lets any
 * session do on an unwrapped object): the wrap-then-decrypt attack fails
 * with CKR_MECHANISM_INVALID.
 *
 * Usage pairs (wrap with decrypt, unwrap with encrypt) cannot be fixed by one
 * template for every key a root KEK delivers; Keyhub refuses them at key
 * creation and again at the target (KEY_USAGE_CONFLICT).
 */
import { KeyhubError } from '../errors';
import type { KeyPolicy, UnwrapTemplate } from './hsm';

const NO_USAGE = { encrypt: false, decrypt: false, sign: false, verify: false, wrap: false, unwrap: false, derive: false } as const;

/** How a key version is unwrapped from the key store for one batch (the translate worker). */
export const TRANSIENT_KEY_POLICY: KeyPolicy = { token: false, private: false, sensitive: true, extractable: true, ...NO_USAGE, allowedMechanisms: ['kwp'] };
/** How a private key version is unwrapped from the private key store for one batch: as a key version, no usage. */
export const TRANSIENT_PRIVATE_KEY_POLICY: KeyPolicy = TRANSIENT_KEY_POLICY;
/** How a root KEK is unwrapped from the KEK store for one batch. */
export const TRANSIENT_KEK_POLICY: KeyPolicy = { token: false, private: false, sensitive: true, extractable: false, ...NO_USAGE, wrap: true, allowedMechanisms: ['kwp'] };

/** `cls`: secret AES keys (what the first master keys fix), any secret key, or private keys. */
function templateOf(p: KeyPolicy, cls: 'aes' | 'secret' | 'private' = 'aes'): UnwrapTemplate {
  const { token, private: priv, sensitive, extractable, encrypt, decrypt, sign, verify, wrap, unwrap, derive, allowedMechanisms } = p;
  const flags = { token, private: priv, sensitive, extractable, encrypt, decrypt, sign, verify, wrap, unwrap, derive, allowedMechanisms };
  if (cls === 'aes') return { keyType: 'aes', ...flags };
  return cls === 'private' ? { class: 'private', ...flags } : flags;
}

/** Attributes every master key has besides its label and id. */
const MASTER = { token: true, private: true, sensitive: true, extractable: false, ...NO_USAGE, wrap: true, unwrap: true, modifiable: false, copyable: false, allowedMechanisms: ['kwp'] } as const;

/** The hub's key store: what every key version is stored under. */
export const HUB_KEY_STORE_POLICY: Omit<KeyPolicy, 'label' | 'id'> = { ...MASTER, allowedMechanisms: ['kwp'], unwrapTemplate: templateOf(TRANSIENT_KEY_POLICY) };
/**
 * The hub's store for TDES, HMAC and generic secret key versions. A master
 * key's unwrap template fixes one value per attribute, and the key store's
 * fixes CKK_AES (its template cannot change: not modifiable), so other
 * secret types need a master key of their own; this one leaves the key type
 * free and fixes everything else as the key store does.
 */
export const HUB_SECRET_STORE_POLICY: Omit<KeyPolicy, 'label' | 'id'> = { ...MASTER, allowedMechanisms: ['kwp'], unwrapTemplate: templateOf(TRANSIENT_KEY_POLICY, 'secret') };
/**
 * The hub's store for private keys (RSA, EC): only CKO_PRIVATE_KEY objects
 * come out of it, sensitive, extractable only so they can be re-wrapped, no
 * usage, AES-KWP only. A blob of it can never become a secret key.
 */
export const HUB_PRIVATE_STORE_POLICY: Omit<KeyPolicy, 'label' | 'id'> = { ...MASTER, allowedMechanisms: ['kwp'], unwrapTemplate: templateOf(TRANSIENT_PRIVATE_KEY_POLICY, 'private') };
/** The hub's KEK store: what every root KEK is stored under. */
export const HUB_KEK_STORE_POLICY: Omit<KeyPolicy, 'label' | 'id'> = { ...MASTER, allowedMechanisms: ['kwp'], unwrapTemplate: templateOf(TRANSIENT_KEK_POLICY) };

/**
 * What the site's transport key may unwrap: the root KEK, both as the
 * session probe that computes its KCV (CKA_SIGN) and as the token object
 * (CKA_UNWRAP); the two differ only in attributes left free here.
 */
export const SITE_TRANSPORT_UNWRAP_TEMPLATE: UnwrapTemplate = {
  keyType: 'aes',
  sensitive: true,
  extractable: false,
  encrypt: false,
  decrypt: false,
  verify: false,
  wrap: false,
  derive: false,
  allowedMechanisms: ['kwp', 'aes-cmac'],
};

/**
 * A root KEK of the HSM-import class: what a PKCS#11 target imports under.
 * Secret and private keys alike (class left free: a private key arrives as
 * PKCS#8 under the same KEK), always sensitive, never extractable. Root KEKs
 * installed before key pairs existed fix CKO_SECRET_KEY: they import secret
 * keys only, and a key pair for such a site fails at the target until its
 * root KEK is rotated.
 */
export const SITE_IMPORT_KEK_UNWRAP_TEMPLATE: UnwrapTemplate = { class: 'any', sensitive: true, extractable: false };

/**
 * The root KEK as the site stores it. Not modifiable or copyable would be
 * better still, but SoftHSM2 refuses both attributes on objects made by an
 * unwrap; the allowed mechanisms, which it fixes, carry the protection.
 */
export function siteImportKekPolicy(label: string, id: Buffer): KeyPolicy {
  return {
    token: true,
    label,
    id,
    private: true,
    sensitive: true,
    extractable: false,
    ...NO_USAGE,
    unwrap: true,
    allowedMechanisms: ['kwp', 'aes-cmac'],
    unwrapTemplate: SITE_IMPORT_KEK_UNWRAP_TEMPLATE,
  };
}

/** The session probe of a root KEK, unwrapped only to compute its KCV, then destroyed. */
export const SITE_KEK_PROBE_POLICY: KeyPolicy = { token: false, sensitive: true, extractable: false, ...NO_USAGE, sign: true, allowedMechanisms: ['kwp', 'aes-cmac'] };

/**
 * The transit class, for targets that need a key outside the token
 * (keystores, cloud re-wrap): delivered keys come out only as sensitive
 * session objects, which may be extractable so that they can be re-wrapped.
 * Secret keys and private keys alike (`class: 'any'`): a key pair goes into
 * a keystore or a cloud as its private key (listener/src/targets/transit-keys.ts
 * gives each such target's KEK this template).
 */
export const SITE_TRANSIT_KEK_UNWRAP_TEMPLATE: UnwrapTemplate = { class: 'any', token: false, sensitive: true };

/**
 * Usage pairs that turn a key into an extraction tool: with wrap and decrypt,
 * anything it wraps can be decrypted back to clear; with unwrap and encrypt,
 * chosen bytes can be encrypted and then unwrapped as a key of known value.
 * One unwrap template cannot refuse them for every key a root KEK delivers,
 * so Keyhub refuses them wherever keys are made (hub) or imported (target).
 */
export const CONFLICTING_USAGES: ReadonlyArray<readonly [string, string]> = [
  ['wrap', 'decrypt'],
  ['unwrap', 'encrypt'],
];

export function assertUsagesCompatible(usages: readonly string[]): void {
  for (const [a, b] of CONFLICTING_USAGES) {
    if (usages.includes(a) && usages.includes(b)) throw new KeyhubError('KEY_USAGE_CONFLICT', `usages ${a} and ${b} together would let the key extract other keys`);
  }
}
