import { KeyhubError } from '@keyhub/shared';

export type KeystoreType = 'pkcs12' | 'jceks';

/** Secret-key algorithms as Java names them (the name `getKey().getAlgorithm()` returns). */
export type SecretKeyAlgorithm = 'AES' | 'DESede' | 'HmacSHA1' | 'HmacSHA256' | 'HmacSHA384' | 'HmacSHA512';

export interface SecretKeyEntryInput {
  readonly kind: 'secretKey';
  readonly alias: string;
  readonly algorithm: SecretKeyAlgorithm;
  /** Clear key bytes; zero-filled by commit(). */
  readonly key: Buffer;
}

export interface PrivateKeyEntryInput {
  readonly kind: 'privateKey';
  readonly alias: string;
  /** Unencrypted PKCS#8 PrivateKeyInfo DER (RSA or EC); zero-filled by commit(). */
  readonly pkcs8: Buffer;
  /** Certificates (DER), the key's own first, its issuers after: Java wants a chain for every private key. */
  readonly chain: readonly Buffer[];
}

export type KeystoreEntryInput = SecretKeyEntryInput | PrivateKeyEntryInput;

export type KeystoreEntryKind = 'secretKey' | 'privateKey' | 'trustedCertificate';

export interface KeystoreEntryInfo {
  readonly alias: string;
  readonly kind: KeystoreEntryKind;
}

export interface KeystoreOptions {
  readonly type: KeystoreType;
  /** Store password, also protecting every entry (as keytool does by default). */
  readonly password: string;
  /** PKCS#12: PBKDF2-HMAC-SHA256 iterations of each entry's PBES2 protection. */
  readonly pkcs12KeyIterations?: number;
  /** PKCS#12: iterations of the PKCS#12 KDF deriving the HMAC-SHA256 MAC key. */
  readonly pkcs12MacIterations?: number;
  /** JCEKS: iterations of PBEWithMD5AndTripleDES for each new entry. */
  readonly jceksIterations?: number;
  /** Sees every buffer that held clear key material, right after it was zero-filled (tests inspect them). */
  readonly onWiped?: (wiped: readonly Buffer[]) => void;
}

/**
 * Defaults. PKCS#12: Java 17's own (keystore.pkcs12.* in java.security):
 * PBES2 with PBKDF2-HMAC-SHA256 and AES-256 at 10,000 iterations, MAC
 * HmacPBESHA256 at 10,000.
 *
 * JCEKS: 10,000, not Java's 200,000. At 200,000 each new entry costs about
 * 1 s here (two chains of 200,000 MD5s) and buys nothing: the file ends with
 * SHA-1(password || "Mighty Aphrodite" || body), so anyone holding the file
 * tests a password guess with one SHA-1 whatever the entry iterations. 10,000
 * is the floor Java itself accepts for jdk.jceks.iterationCount; Java reads
 * up to 5,000,000. A strong password and PKCS#12 are the real protection.
 */
export const KEYSTORE_DEFAULTS = {
  pkcs12KeyIterations: 10_000,
  pkcs12MacIterations: 10_000,
  jceksIterations: 10_000,
} as const;

/** Java refuses PBE iteration counts above this when reading (KeyProtector, PKCS12KeyStore). */
export const MAX_ITERATIONS = 5_000_000;

/** Java 17's PBEKey accepts printable ASCII only; refusing here beats a file Java cannot open. */
export function checkPassword(password: string): void {
  if (password.length === 0 || !/^[\x20-\x7e]+$/.test(password)) {
    throw new KeyhubError('KEYSTORE_PASSWORD_INVALID', 'keystore password must be 1 or more printable ASCII characters');
  }
}

export function checkIterations(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_ITERATIONS) throw new KeyhubError('CONFIG_INVALID', `${name} must be an integer from 1 to ${MAX_ITERATIONS}`);
  return n;
}

/**
 * Java lower-cases aliases (Locale.ENGLISH) in both PKCS12KeyStore and
 * JceKeyStore, so an upper-case alias would come back changed: we refuse it
 * rather than surprise. Printable ASCII keeps Java's modified UTF-8 equal to
 * UTF-8 and the PKCS#12 friendlyName a plain BMPString.
 */
export function checkAlias(alias: string): void {
  if (alias.length < 1 || alias.length > 128 || !/^[\x20-\x7e]+$/.test(alias) || alias !== alias.toLowerCase()) {
    throw new KeyhubError('KEYSTORE_ALIAS_INVALID', 'keystore alias must be 1..128 lower-case printable ASCII characters', { details: { alias: alias.slice(0, 128) } });
  }
}

/** The alias of a key version: `<key name>.v<version>`, lower-cased as Java would. */
export function keystoreAlias(keyName: string, version: number): string {
  const alias = `${keyName}.v${version}`.toLowerCase();
  checkAlias(alias);
  return alias;
}
