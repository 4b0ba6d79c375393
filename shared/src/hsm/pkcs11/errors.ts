import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';

const CKR_NAMES = new Map<number, string>([
  ...Object.entries(pkcs11js)
    .filter(([name, value]) => name.startsWith('CKR_') && typeof value === 'number')
    .map(([name, value]): [number, string] => [value as number, name]),
  // PKCS#11 2.40 codes pkcs11js 2.1 has no constant for (it reports them as CKR_VENDOR_DEFINED:<code>).
  [0x1b, 'CKR_ACTION_PROHIBITED'],
]);

/** The CKR_* name of a PKCS#11 failure, however pkcs11js reported it. */
export function ckrName(err: unknown): string | undefined {
  if (err instanceof pkcs11js.Pkcs11Error) return CKR_NAMES.get(err.code) ?? `CKR_0x${err.code.toString(16)}`;
  if (err instanceof Error) {
    // Synchronous calls throw a plain Error whose message is "CKR_NAME:<code>"; the code decides.
    const withCode = /\b(CKR_[A-Z_]+):(\d+)\b/.exec(err.message);
    if (withCode) return CKR_NAMES.get(Number(withCode[2])) ?? withCode[1];
    const match = /\b(CKR_[A-Z_]+)\b/.exec(err.message);
    if (match) return match[1];
  }
  return undefined;
}

/** A PKCS#11 failure as a KeyhubError that keeps its CKR_* code; PIN trouble gets its own code. */
export function hsmError(err: unknown, operation: string): KeyhubError {
  if (err instanceof KeyhubError) return err;
  const ckr = ckrName(err);
  if (ckr === 'CKR_PIN_INCORRECT' || ckr === 'CKR_PIN_LEN_RANGE' || ckr === 'CKR_PIN_INVALID') {
    return new KeyhubError('HSM_PIN_INCORRECT', `${operation}: token refused the PIN (${ckr})`, { ckr, cause: err });
  }
  if (ckr === 'CKR_PIN_LOCKED') return new KeyhubError('HSM_PIN_INCORRECT', `${operation}: PIN is locked (${ckr})`, { ckr, cause: err });
  return new KeyhubError('HSM_ERROR', `${operation} failed: ${ckr ?? 'unknown error'}`, { ckr, cause: err });
}
