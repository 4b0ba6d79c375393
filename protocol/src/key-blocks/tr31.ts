/**
 * TR-31 / ANSI X9.143 key blocks (versions B and D) on node:crypto: no npm
 * package implements them. Checked against the TR-31:2018 annex vectors and
 * an independent Python implementation in test/.
 */
export { Tr31Error, type Tr31ErrorCode } from './tr31-error';
export * from './tr31-fields';
export { type Tr31OptionalBlock } from './tr31-optional-blocks';
export { encodeTr31Header, parseTr31Header, TR31_MAX_BLOCK_LENGTH, type ParsedTr31Header, type Tr31Header } from './tr31-header';
export { Tr31Secrets, wipeBuffers } from './tr31-secrets';
export { cmac as tr31Cmac, type Tr31Cipher } from './tr31-cmac';
export { deriveBlockKeys as tr31DeriveBlockKeys } from './tr31-derive';
export { unwrapTr31, wrapTr31, type Tr31HeaderInput, type Tr31Unwrapped, type Tr31WrapOptions } from './tr31-key-block';
export { keyhubUsagesFromTr31, tr31HeaderFieldsFor, type Tr31HeaderFields, type Tr31UsageInput } from './tr31-usage-map';
