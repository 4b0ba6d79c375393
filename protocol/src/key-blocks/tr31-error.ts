import type { ErrorCode } from '../errors';

/** The codes a TR-31 function throws; each is a row of the protocol error table. */
export type Tr31ErrorCode = Extract<ErrorCode, 'TR31_MALFORMED' | 'TR31_MAC_INVALID' | 'TR31_UNSUPPORTED' | 'TR31_KBPK_INVALID' | 'TR31_USAGE_UNMAPPABLE' | 'KEY_LENGTH_INVALID' | 'INPUT_INVALID'>;

/**
 * protocol/ may not import shared/, so it cannot throw KeyhubError. This
 * error carries a code of the same table, which `KeyhubError.from` keeps.
 * Messages name fields and lengths only, never key bytes or block text.
 */
export class Tr31Error extends Error {
  readonly code: Tr31ErrorCode;

  constructor(code: Tr31ErrorCode, message: string) {
    super(message);
    this.name = 'Tr31Error';
    this.code = code;
  }

  static is(err: unknown, code?: Tr31ErrorCode): err is Tr31Error {
    return err instanceof Tr31Error && (code === undefined || err.code === code);
  }
}

export const malformed = (message: string): Tr31Error => new Tr31Error('TR31_MALFORMED', message);
