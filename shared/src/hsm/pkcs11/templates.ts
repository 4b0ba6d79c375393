/**
 * PKCS#11 templates and checks shared by the adapter (pkcs11-hsm.ts) and the
 * translateKwp worker thread, so that both create objects with exactly the
 * same attributes and refuse the same blobs.
 */
import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { KeyPolicy } from '../hsm';

const P = pkcs11js;

/** Attributes of a secret key (forPrivateKey: of a private key, which has no encrypt/verify/wrap). */
export function policyAttributes(policy: KeyPolicy, forPrivateKey = false): pkcs11js.Template {
  const all: pkcs11js.Template = [
    { type: P.CKA_TOKEN, value: policy.token },
    { type: P.CKA_PRIVATE, value: policy.private ?? true },
    { type: P.CKA_SENSITIVE, value: policy.sensitive ?? true },
    { type: P.CKA_EXTRACTABLE, value: policy.extractable ?? false },
    { type: P.CKA_ENCRYPT, value: policy.encrypt ?? false },
    { type: P.CKA_DECRYPT, value: policy.decrypt ?? false },
    { type: P.CKA_SIGN, value: policy.sign ?? false },
    { type: P.CKA_VERIFY, value: policy.verify ?? false },
    { type: P.CKA_WRAP, value: policy.wrap ?? false },
    { type: P.CKA_UNWRAP, value: policy.unwrap ?? false },
    { type: P.CKA_DERIVE, value: policy.derive ?? false },
  ];
  const privateOnly = new Set([P.CKA_ENCRYPT, P.CKA_VERIFY, P.CKA_WRAP]);
  const t = forPrivateKey ? all.filter((a) => !privateOnly.has(a.type)) : all;
  if (policy.label !== undefined) t.push({ type: P.CKA_LABEL, value: policy.label });
  if (policy.id !== undefined) t.push({ type: P.CKA_ID, value: policy.id });
  return t;
}

export function aesUnwrapTemplate(policy: KeyPolicy): pkcs11js.Template {
  // No CKA_VALUE_LEN / CKA_CHECK_VALUE: tokens reject them in unwrap templates.
  return [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, ...policyAttributes(policy)];
}

/**
 * An RFC 5649 blob must be the key padded to 8 bytes plus 8: checked here
 * because SoftHSM accepts any payload length as an AES key.
 */
export function checkKwpBlob(blob: Uint8Array, keyLengthBytes: number): void {
  if (![16, 24, 32].includes(keyLengthBytes) || blob.length !== Math.ceil(keyLengthBytes / 8) * 8 + 8) {
    throw new KeyhubError('KEY_LENGTH_INVALID', `wrapped blob of ${blob.length} bytes cannot hold an AES key of ${keyLengthBytes} bytes`);
  }
}
