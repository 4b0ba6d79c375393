import { timingSafeEqual } from 'node:crypto';
import { cmac, decryptBlocks, encryptBlocks } from './tr31-cmac';
import { checkKbpk, deriveBlockKeys, versionCipher } from './tr31-derive';
import { malformed, Tr31Error } from './tr31-error';
import { TR31_SUPPORTED_VERSIONS, TR31_VERSION_PARAMS, type Tr31SupportedVersion, type Tr31VersionId } from './tr31-fields';
import { checkHeaderFields, encodeTr31Header, parseTr31Header, type Tr31Header } from './tr31-header';
import { buildPayload, keyFromPayload, type PayloadOptions } from './tr31-payload';
import { Tr31Secrets } from './tr31-secrets';

/** A header to wrap under; key version, key context and optional blocks default to none. */
export type Tr31HeaderInput = Omit<Tr31Header, 'keyVersion' | 'keyContext' | 'optionalBlocks'> & Partial<Pick<Tr31Header, 'keyVersion' | 'keyContext' | 'optionalBlocks'>>;

export interface Tr31WrapOptions extends PayloadOptions {
  /** Takes every buffer with clear key bytes or derived keys; wiped before wrap returns. Tests pass one to look. */
  secrets?: Tr31Secrets;
}

export interface Tr31Unwrapped {
  header: Tr31Header;
  /** The header text as received (what the MAC covers). */
  headerText: string;
  /** The clear key, in a buffer of its own: the caller wipes it (wipeBuffers) once it is used. */
  key: Buffer;
}

function supported(version: Tr31VersionId): Tr31SupportedVersion {
  if (!(TR31_SUPPORTED_VERSIONS as readonly string[]).includes(version)) throw new Tr31Error('TR31_UNSUPPORTED', `key block version ${version} is not supported (B and D are)`);
  return version as Tr31SupportedVersion;
}

/**
 * X9.24-1 forbids protecting a key with a weaker one: an AES key needs an
 * AES KBPK at least as long, a TDES key a TDES KBPK at least as long.
 */
function checkStrength(header: Tr31Header, kbpk: Buffer, key: Buffer): void {
  if (header.version === 'B' && header.algorithm === 'A') throw new Tr31Error('TR31_KBPK_INVALID', 'a TDES KBPK (version B) is weaker than any AES key: use version D');
  const sameFamily = (header.version === 'D' && header.algorithm === 'A') || (header.version === 'B' && header.algorithm === 'T');
  if (sameFamily && key.length > kbpk.length) throw new Tr31Error('TR31_KBPK_INVALID', `a ${kbpk.length}-byte KBPK is weaker than the ${key.length}-byte key it would protect`);
}

/**
 * Makes a version B or D key block: the MAC (CMAC under the derived KBAK) is
 * computed over the header and the clear key data, and is the IV of the
 * CBC encryption of the key data under the derived KBEK, so the header's
 * usage, mode of use and exportability are bound to the key.
 */
export function wrapTr31(kbpk: Buffer, input: Tr31HeaderInput, key: Buffer, options: Tr31WrapOptions = {}): string {
  const secrets = options.secrets ?? new Tr31Secrets();
  try {
    if (typeof input !== 'object' || input === null) throw malformed('header is missing');
    const header: Tr31Header = { ...input, keyVersion: input.keyVersion ?? '00', keyContext: input.keyContext ?? '0', optionalBlocks: input.optionalBlocks ?? [] };
    checkHeaderFields(header);
    const version = supported(header.version);
    checkKbpk(version, kbpk);
    const { blockSize, macLength } = TR31_VERSION_PARAMS[version];
    const payload = buildPayload(key, header.algorithm, blockSize, options, secrets);
    checkStrength(header, kbpk, key);
    const headerText = encodeTr31Header(header, 2 * (payload.length + macLength));
    const { kbek, kbak } = deriveBlockKeys(version, kbpk, secrets);
    const mac = cmac(versionCipher(version), kbak, macInput(headerText, payload, secrets), secrets);
    const encrypted = encryptBlocks(versionCipher(version), kbek, mac, payload, secrets);
    return headerText + encrypted.toString('hex').toUpperCase() + mac.subarray(0, macLength).toString('hex').toUpperCase();
  } finally {
    secrets.wipe();
  }
}

/**
 * Opens a version B or D key block: header checks, then the MAC, and only
 * after the MAC verifies does anything read the decrypted key data.
 */
export function unwrapTr31(kbpk: Buffer, block: string, options: { secrets?: Tr31Secrets } = {}): Tr31Unwrapped {
  const secrets = options.secrets ?? new Tr31Secrets();
  try {
    const { header, text: headerText } = parseTr31Header(block);
    const version = supported(header.version);
    checkKbpk(version, kbpk);
    const { blockSize, macLength } = TR31_VERSION_PARAMS[version];
    const body = block.slice(headerText.length);
    if (!/^[0-9A-Fa-f]*$/.test(body)) throw malformed('encrypted key data and MAC must be hex');
    const dataHex = body.slice(0, body.length - 2 * macLength);
    if (body.length <= 2 * macLength || dataHex.length % (2 * blockSize) !== 0)
      throw malformed(`encrypted key data must be a whole number of ${blockSize}-byte blocks, followed by a ${macLength}-byte MAC`);
    const mac = Buffer.from(body.slice(dataHex.length), 'hex');
    const { kbek, kbak } = deriveBlockKeys(version, kbpk, secrets);
    const payload = decryptBlocks(versionCipher(version), kbek, mac, Buffer.from(dataHex, 'hex'), secrets);
    const expected = cmac(versionCipher(version), kbak, macInput(headerText, payload, secrets), secrets).subarray(0, macLength);
    if (!timingSafeEqual(expected, mac)) throw new Tr31Error('TR31_MAC_INVALID', 'key block MAC does not verify under this KBPK');
    return { header, headerText, key: keyFromPayload(payload, header.algorithm) };
  } finally {
    secrets.wipe();
  }
}

function macInput(headerText: string, payload: Buffer, secrets: Tr31Secrets): Buffer {
  const input = secrets.alloc(headerText.length + payload.length);
  input.write(headerText, 0, 'latin1');
  payload.copy(input, headerText.length);
  return input;
}
