import { malformed } from './tr31-error';

/** An optional block of the header: a two-character id and printable ASCII data. The padding block PB is not listed: it is made and dropped by the codec. */
export interface Tr31OptionalBlock {
  id: string;
  data: string;
}

export const PAD_BLOCK_ID = 'PB';
/** X9.143: the header counts its optional blocks in two digits. */
export const MAX_OPTIONAL_BLOCKS = 99;

const ID = /^[0-9A-Za-z]{2}$/;
const HEX = /^[0-9A-Fa-f]*$/;
const PRINTABLE = /^[\x20-\x7E]*$/;

/** Rules some blocks add to the generic form. */
const DATA_RULES: Record<string, { pattern: RegExp; what: string }> = {
  // Key set identifier (and device id) of a TDES DUKPT BDK or initial key, hex.
  KS: { pattern: /^[0-9A-F]+$/, what: 'upper-case hex' },
  // Initial key identifier of an AES DUKPT key, 16 hex.
  IK: { pattern: /^[0-9A-F]{16}$/, what: '16 upper-case hex' },
};

export function checkOptionalBlock(block: Tr31OptionalBlock): void {
  if (typeof block.id !== 'string' || !ID.test(block.id)) throw malformed('optional block id must be two letters or digits');
  if (typeof block.data !== 'string' || !PRINTABLE.test(block.data)) throw malformed(`optional block ${block.id} data must be printable ASCII`);
  const rule = DATA_RULES[block.id];
  if (rule && !rule.pattern.test(block.data)) throw malformed(`optional block ${block.id} data must be ${rule.what}`);
}

/**
 * Reads `count` optional blocks from `text` at `offset`. Lengths are two hex
 * characters counting id and length, or '00' then the number of bytes of the
 * length and the length itself in hex (the extended form, for blocks longer
 * than 255). PB must be the last block.
 */
export function parseOptionalBlocks(text: string, offset: number, count: number): { blocks: Tr31OptionalBlock[]; end: number } {
  const blocks: Tr31OptionalBlock[] = [];
  const seen = new Set<string>();
  let pos = offset;
  for (let i = 0; i < count; i++) {
    const id = text.slice(pos, pos + 2);
    if (!ID.test(id)) throw malformed(`optional block ${i + 1}: id must be two letters or digits`);
    const { length, overhead } = blockLength(text, pos, id);
    if (pos + length > text.length) throw malformed(`optional block ${id} runs past the end of the key block`);
    const data = text.slice(pos + overhead, pos + length);
    if (seen.has(id)) throw malformed(`optional block ${id} appears twice`);
    seen.add(id);
    if (id === PAD_BLOCK_ID) {
      if (i !== count - 1) throw malformed('the padding block PB must be the last optional block');
      if (!PRINTABLE.test(data)) throw malformed('optional block PB data must be printable ASCII');
    } else {
      const block = { id, data };
      checkOptionalBlock(block);
      blocks.push(block);
    }
    pos += length;
  }
  return { blocks, end: pos };
}

function blockLength(text: string, pos: number, id: string): { length: number; overhead: number } {
  const short = text.slice(pos + 2, pos + 4);
  if (short.length !== 2 || !HEX.test(short)) throw malformed(`optional block ${id}: length must be two hex characters`);
  if (short !== '00') {
    const length = parseInt(short, 16);
    if (length < 4) throw malformed(`optional block ${id}: length ${length} does not cover its id and length`);
    return { length, overhead: 4 };
  }
  const lengthOfLength = text.slice(pos + 4, pos + 6);
  if (lengthOfLength.length !== 2 || !HEX.test(lengthOfLength)) throw malformed(`optional block ${id}: length of length must be two hex characters`);
  const bytes = parseInt(lengthOfLength, 16);
  // Two bytes already exceed any key block's four-digit length.
  if (bytes < 1 || bytes > 2) throw malformed(`optional block ${id}: length of length must be 1 or 2`);
  const lengthText = text.slice(pos + 6, pos + 6 + 2 * bytes);
  if (lengthText.length !== 2 * bytes || !HEX.test(lengthText)) throw malformed(`optional block ${id}: extended length must be ${2 * bytes} hex characters`);
  const overhead = 6 + 2 * bytes;
  const length = parseInt(lengthText, 16);
  if (length < overhead) throw malformed(`optional block ${id}: length ${length} does not cover its id and length`);
  return { length, overhead };
}

const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');

function encodeBlock(block: Tr31OptionalBlock): string {
  const short = 4 + block.data.length;
  if (short <= 0xff) return `${block.id}${hex2(short)}${block.data}`;
  const extended = 10 + block.data.length;
  if (extended > 0xffff) throw malformed(`optional block ${block.id} is too long`);
  return `${block.id}0002${extended.toString(16).toUpperCase().padStart(4, '0')}${block.data}`;
}

/**
 * Encodes the blocks and, when the header would not end on a cipher block
 * boundary, a PB of '0's that makes it so (X9.143 requires the boundary).
 * `headerBase` is the length of the fixed header before the blocks.
 */
export function encodeOptionalBlocks(blocks: readonly Tr31OptionalBlock[], headerBase: number, blockSize: number): { text: string; count: number } {
  const ids = new Set<string>();
  for (const block of blocks) {
    checkOptionalBlock(block);
    if (block.id === PAD_BLOCK_ID) throw malformed('the padding block PB is added by the encoder, not passed in');
    if (ids.has(block.id)) throw malformed(`optional block ${block.id} appears twice`);
    ids.add(block.id);
  }
  let text = blocks.map(encodeBlock).join('');
  let count = blocks.length;
  const rest = (headerBase + text.length) % blockSize;
  if (rest !== 0) {
    let pad = blockSize - rest;
    if (pad < 4) pad += blockSize;
    text += `${PAD_BLOCK_ID}${hex2(pad)}${'0'.repeat(pad - 4)}`;
    count += 1;
  }
  if (count > MAX_OPTIONAL_BLOCKS) throw malformed(`a header holds at most ${MAX_OPTIONAL_BLOCKS} optional blocks`);
  return { text, count };
}
