import { invalidUsages, KEY_ALGORITHM_INFO, KEY_ALGORITHMS, KEY_LENGTH_BYTES, KEY_USAGES, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { assertUsagesCompatible, KeyhubError } from '@keyhub/shared';

/** What an operator asks for when creating a key. */
export interface KeyRequest {
  name: string;
  algorithm: string;
  usages?: string[];
  exportable?: boolean;
  /** Distribution falls under the `distribution.sensitive` approval policy. */
  sensitive?: boolean;
}

/** A checked key request: a known algorithm, its length, known usages, an explicit exportability. */
export interface KeySpec<R extends KeyRequest = KeyRequest> {
  input: R;
  algorithm: KeyAlgorithm;
  usages: KeyUsage[];
  length: number;
  exportable: boolean;
  sensitive: boolean;
}

export const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/**
 * Checks a request. Usages default per algorithm (AES and TDES: encrypt,
 * decrypt; HMAC and key pairs: sign, verify; generic secrets: derive),
 * exportable to false. A usage the type cannot have (encrypt for an HMAC or
 * EC key, derive for RSA, ...: protocol's KEY_ALGORITHM_INFO) is
 * KEY_USAGE_INVALID; a pair that would let the key extract others
 * (wrap+decrypt, unwrap+encrypt, also across the halves of an RSA pair) is
 * KEY_USAGE_CONFLICT.
 */
export function keySpec<R extends KeyRequest>(input: R): KeySpec<R> {
  if (!KEY_NAME.test(input.name)) throw new KeyhubError('INPUT_INVALID', 'key name must be 1-128 characters of A-Z a-z 0-9 . _ : / -');
  if (!(KEY_ALGORITHMS as readonly string[]).includes(input.algorithm)) {
    throw new KeyhubError('INPUT_INVALID', `algorithm must be one of ${KEY_ALGORITHMS.join(', ')}`);
  }
  const algorithm = input.algorithm as KeyAlgorithm;
  const info = KEY_ALGORITHM_INFO[algorithm];
  const usages = [...new Set(input.usages ?? info.defaultUsages)];
  const bad = usages.filter((u) => !(KEY_USAGES as readonly string[]).includes(u));
  if (bad.length || usages.length === 0) throw new KeyhubError('INPUT_INVALID', `usages must be among ${KEY_USAGES.join(', ')}`);
  const wrongForType = invalidUsages(algorithm, usages);
  if (wrongForType.length) throw new KeyhubError('KEY_USAGE_INVALID', `an ${algorithm} key cannot have usage ${wrongForType.join(', ')}; it may have ${info.usages.join(', ')}`);
  assertUsagesCompatible(usages as KeyUsage[]);
  return { input, algorithm, usages: usages as KeyUsage[], length: KEY_LENGTH_BYTES[algorithm], exportable: input.exportable ?? false, sensitive: input.sensitive ?? false };
}

/** A bulk request names each key once. */
export function assertDistinctNames(names: string[]): Set<string> {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new KeyhubError('INPUT_INVALID', `key name "${n}" is given twice`);
    seen.add(n);
  }
  return seen;
}

/** A stored algorithm name that a package may carry. */
export function distributableAlgorithm(value: string): KeyAlgorithm {
  if ((KEY_ALGORITHMS as readonly string[]).includes(value)) return value as KeyAlgorithm;
  throw new KeyhubError('INPUT_INVALID', `algorithm ${value} cannot be distributed`);
}
