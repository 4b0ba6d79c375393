/**
 * The values of the fixed header fields of a TR-31 key block, as ANSI
 * X9.143-2022 (and TR-31:2018 before it) lists them. A parser that accepts
 * any character here would let a block claim a usage no HSM knows, so the
 * tables are closed; numeric key usages are the standard's proprietary range.
 */

/** Key block version ids the format defines; this library wraps and unwraps B and D. */
export const TR31_VERSIONS = ['A', 'B', 'C', 'D'] as const;
export type Tr31VersionId = (typeof TR31_VERSIONS)[number];
export const TR31_SUPPORTED_VERSIONS = ['B', 'D'] as const;
export type Tr31SupportedVersion = (typeof TR31_SUPPORTED_VERSIONS)[number];

/** Cipher block size and MAC length in bytes; the header with its optional blocks is a multiple of the block size. */
export const TR31_VERSION_PARAMS: Record<Tr31VersionId, { blockSize: number; macLength: number }> = {
  A: { blockSize: 8, macLength: 4 },
  B: { blockSize: 8, macLength: 8 },
  C: { blockSize: 8, macLength: 4 },
  D: { blockSize: 16, macLength: 16 },
};

export const TR31_KEY_USAGES = {
  B0: 'base derivation key (BDK)',
  B1: 'initial DUKPT key',
  B2: 'base key variant key',
  B3: 'key derivation key (non ANSI X9.24)',
  C0: 'card verification key',
  D0: 'symmetric data encryption key',
  D1: 'asymmetric data encryption key',
  D2: 'data encryption key for decimalization table',
  D3: 'data encryption key for sensitive data',
  E0: 'EMV/chip issuer master key: application cryptograms',
  E1: 'EMV/chip issuer master key: secure messaging for confidentiality',
  E2: 'EMV/chip issuer master key: secure messaging for integrity',
  E3: 'EMV/chip issuer master key: data authentication code',
  E4: 'EMV/chip issuer master key: dynamic numbers',
  E5: 'EMV/chip issuer master key: card personalization',
  E6: 'EMV/chip issuer master key: other',
  I0: 'initialization vector',
  K0: 'key encryption or wrapping key',
  K1: 'TR-31 key block protection key',
  K2: 'TR-34 asymmetric key',
  K3: 'asymmetric key for key agreement or key wrapping',
  M0: 'ISO 16609 MAC algorithm 1 (TDES)',
  M1: 'ISO 9797-1 MAC algorithm 1',
  M2: 'ISO 9797-1 MAC algorithm 2',
  M3: 'ISO 9797-1 MAC algorithm 3',
  M4: 'ISO 9797-1 MAC algorithm 4',
  M5: 'ISO 9797-1:1999 MAC algorithm 5',
  M6: 'ISO 9797-1:2011 MAC algorithm 5 (CMAC)',
  M7: 'HMAC',
  M8: 'ISO 9797-1:2011 MAC algorithm 6',
  P0: 'PIN encryption key',
  P1: 'PIN generation key',
  S0: 'asymmetric key pair for digital signature',
  S1: 'asymmetric key pair, CA use',
  S2: 'asymmetric key pair, non X9.24 use',
  V0: 'PIN verification key, other algorithm',
  V1: 'PIN verification key, IBM 3624',
  V2: 'PIN verification key, VISA PVV',
  V3: 'PIN verification key, X9.132 algorithm 1',
  V4: 'PIN verification key, X9.132 algorithm 2',
} as const;
export type Tr31KnownKeyUsage = keyof typeof TR31_KEY_USAGES;

export const TR31_ALGORITHMS = {
  A: 'AES',
  D: 'DEA (single DES)',
  E: 'elliptic curve',
  H: 'HMAC',
  R: 'RSA',
  S: 'DSA',
  T: 'triple DES',
} as const;
export type Tr31Algorithm = keyof typeof TR31_ALGORITHMS;

export const TR31_MODES_OF_USE = {
  B: 'encrypt/wrap and decrypt/unwrap',
  C: 'generate and verify (MAC)',
  D: 'decrypt/unwrap only',
  E: 'encrypt/wrap only',
  G: 'generate only (MAC)',
  N: 'no special restrictions',
  S: 'signature only',
  T: 'sign and decrypt',
  V: 'verify only',
  X: 'derive other keys',
  Y: 'create key variants',
} as const;
export type Tr31ModeOfUse = keyof typeof TR31_MODES_OF_USE;

export const TR31_EXPORTABILITY = {
  E: 'exportable under a KEK in a form that meets X9.24 (a key block)',
  N: 'not exportable',
  S: 'sensitive: exportable under a KEK in a form that does not meet X9.24',
} as const;
export type Tr31Exportability = keyof typeof TR31_EXPORTABILITY;

/** X9.143 key context (header byte 14); TR-31:2018 had it reserved as '0'. */
export const TR31_KEY_CONTEXTS = {
  '0': 'storage or exchange',
  '1': 'storage only',
  '2': 'exchange only',
} as const;
export type Tr31KeyContext = keyof typeof TR31_KEY_CONTEXTS;

const has = (table: object, value: string): boolean => Object.prototype.hasOwnProperty.call(table, value);

export function isTr31KeyUsage(value: string): boolean {
  return has(TR31_KEY_USAGES, value) || /^[0-9]{2}$/.test(value);
}
export const isTr31Algorithm = (value: string): value is Tr31Algorithm => value.length === 1 && has(TR31_ALGORITHMS, value);
export const isTr31ModeOfUse = (value: string): value is Tr31ModeOfUse => value.length === 1 && has(TR31_MODES_OF_USE, value);
export const isTr31Exportability = (value: string): value is Tr31Exportability => value.length === 1 && has(TR31_EXPORTABILITY, value);
export const isTr31KeyContext = (value: string): value is Tr31KeyContext => value.length === 1 && has(TR31_KEY_CONTEXTS, value);
export const isTr31Version = (value: string): value is Tr31VersionId => (TR31_VERSIONS as readonly string[]).includes(value);
/** Two alphanumerics; '00' means no key version, a leading 'c' marks a key component. */
export const isTr31KeyVersion = (value: string): boolean => /^[0-9A-Za-z]{2}$/.test(value);
