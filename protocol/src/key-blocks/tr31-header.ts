import { malformed } from './tr31-error';
import {
  isTr31Algorithm,
  isTr31Exportability,
  isTr31KeyContext,
  isTr31KeyUsage,
  isTr31KeyVersion,
  isTr31ModeOfUse,
  isTr31Version,
  TR31_VERSION_PARAMS,
  type Tr31Algorithm,
  type Tr31Exportability,
  type Tr31KeyContext,
  type Tr31ModeOfUse,
  type Tr31VersionId,
} from './tr31-fields';
import { encodeOptionalBlocks, parseOptionalBlocks, type Tr31OptionalBlock } from './tr31-optional-blocks';

/** The header of a key block, without its length (which the codec computes) and without the padding block PB. */
export interface Tr31Header {
  version: Tr31VersionId;
  keyUsage: string;
  algorithm: Tr31Algorithm;
  modeOfUse: Tr31ModeOfUse;
  /** Two alphanumerics, '00' when the key has no version. */
  keyVersion: string;
  exportability: Tr31Exportability;
  keyContext: Tr31KeyContext;
  optionalBlocks: readonly Tr31OptionalBlock[];
}

export interface ParsedTr31Header {
  header: Tr31Header;
  /** The header exactly as it was received, which the MAC covers. */
  text: string;
}

/** Four decimal digits: the longest key block there is. */
export const TR31_MAX_BLOCK_LENGTH = 9999;
const FIXED_HEADER_LENGTH = 16;
const PRINTABLE = /^[\x20-\x7E]*$/;

/** Throws TR31_MALFORMED naming the first field that is not one the standard defines. */
export function checkHeaderFields(h: Tr31Header): void {
  if (typeof h !== 'object' || h === null) throw malformed('header is missing');
  if (typeof h.version !== 'string' || !isTr31Version(h.version)) throw malformed('version id is not A, B, C or D');
  if (typeof h.keyUsage !== 'string' || !isTr31KeyUsage(h.keyUsage)) throw malformed('key usage is not one X9.143 defines');
  if (typeof h.algorithm !== 'string' || !isTr31Algorithm(h.algorithm)) throw malformed('algorithm is not one X9.143 defines');
  if (typeof h.modeOfUse !== 'string' || !isTr31ModeOfUse(h.modeOfUse)) throw malformed('mode of use is not one X9.143 defines');
  if (typeof h.keyVersion !== 'string' || !isTr31KeyVersion(h.keyVersion)) throw malformed('key version number must be two letters or digits');
  if (typeof h.exportability !== 'string' || !isTr31Exportability(h.exportability)) throw malformed('exportability is not E, N or S');
  if (typeof h.keyContext !== 'string' || !isTr31KeyContext(h.keyContext)) throw malformed('key context is not 0, 1 or 2');
  if (!Array.isArray(h.optionalBlocks)) throw malformed('optional blocks must be a list');
}

/**
 * The header text of a block whose remaining part (encrypted key data and
 * MAC, in hex) is `bodyLength` characters long.
 */
export function encodeTr31Header(h: Tr31Header, bodyLength: number): string {
  checkHeaderFields(h);
  const { text, count } = encodeOptionalBlocks(h.optionalBlocks, FIXED_HEADER_LENGTH, TR31_VERSION_PARAMS[h.version].blockSize);
  const total = FIXED_HEADER_LENGTH + text.length + bodyLength;
  if (total > TR31_MAX_BLOCK_LENGTH) throw malformed(`key block would be ${total} characters, more than ${TR31_MAX_BLOCK_LENGTH}`);
  const length = String(total).padStart(4, '0');
  return `${h.version}${length}${h.keyUsage}${h.algorithm}${h.modeOfUse}${h.keyVersion}${h.exportability}${String(count).padStart(2, '0')}${h.keyContext}0${text}`;
}

/**
 * Reads the header of a whole key block and checks what can be checked
 * without the KBPK: printable ASCII only, the declared length equal to the
 * real one, every field from its table, the optional blocks, and a header
 * that ends on a cipher block boundary.
 */
export function parseTr31Header(block: string): ParsedTr31Header {
  if (typeof block !== 'string') throw malformed('key block must be a string');
  if (block.length < FIXED_HEADER_LENGTH) throw malformed(`key block is ${block.length} characters, shorter than a header`);
  if (block.length > TR31_MAX_BLOCK_LENGTH) throw malformed(`key block is longer than ${TR31_MAX_BLOCK_LENGTH} characters`);
  if (!PRINTABLE.test(block)) throw malformed('key block holds characters other than printable ASCII');
  const lengthText = block.slice(1, 5);
  if (!/^[0-9]{4}$/.test(lengthText)) throw malformed('key block length must be four digits');
  if (Number(lengthText) !== block.length) throw malformed(`key block length field says ${Number(lengthText)}, the block is ${block.length} characters`);
  const countText = block.slice(12, 14);
  if (!/^[0-9]{2}$/.test(countText)) throw malformed('number of optional blocks must be two digits');
  if (block[15] !== '0') throw malformed('reserved header character must be 0');
  const fixed = {
    version: block[0] as Tr31VersionId,
    keyUsage: block.slice(5, 7),
    algorithm: block[7] as Tr31Algorithm,
    modeOfUse: block[8] as Tr31ModeOfUse,
    keyVersion: block.slice(9, 11),
    exportability: block[11] as Tr31Exportability,
    keyContext: block[14] as Tr31KeyContext,
    optionalBlocks: [],
  };
  checkHeaderFields(fixed);
  const { blocks, end } = parseOptionalBlocks(block, FIXED_HEADER_LENGTH, Number(countText));
  if (end % TR31_VERSION_PARAMS[fixed.version].blockSize !== 0) throw malformed(`header of ${end} characters does not end on a cipher block boundary`);
  return { header: { ...fixed, optionalBlocks: blocks }, text: block.slice(0, end) };
}
