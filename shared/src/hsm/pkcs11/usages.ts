import * as pkcs11js from 'pkcs11js';
import type { UsageFlags } from '../hsm';

const P = pkcs11js;

const USAGE_ATTRIBUTES = {
  encrypt: P.CKA_ENCRYPT,
  decrypt: P.CKA_DECRYPT,
  sign: P.CKA_SIGN,
  verify: P.CKA_VERIFY,
  wrap: P.CKA_WRAP,
  unwrap: P.CKA_UNWRAP,
  derive: P.CKA_DERIVE,
} as const;

/**
 * C_SetAttributeValue on the usage flags named (a lifecycle command at a
 * site: suspend, resume, deactivate). Checked on SoftHSM2 2.6.1: the usage
 * flags of an object made by C_UnwrapKey can be switched off and on again
 * (such objects are CKA_MODIFIABLE, which SoftHSM will not let an unwrap set
 * false); an object created CKA_MODIFIABLE false refuses with
 * CKR_ACTION_PROHIBITED (0x1B), a read-only session with
 * CKR_SESSION_READ_ONLY. Other tokens may refuse some flags: callers treat a
 * refusal as "this token cannot switch usages" and fall back.
 */
export function setUsageFlags(lib: pkcs11js.PKCS11, s: Buffer, handle: Buffer, usages: UsageFlags): void {
  const template = (Object.keys(USAGE_ATTRIBUTES) as Array<keyof UsageFlags>).filter((k) => usages[k] !== undefined).map((k) => ({ type: USAGE_ATTRIBUTES[k], value: usages[k] as boolean }));
  if (template.length) lib.C_SetAttributeValue(s, handle, template);
}
