import { DEFAULT_TARGET_KINDS, TARGET_KINDS, type TargetKind } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';

/**
 * A key's target policy (issue 12): the kinds of target it may reach, and
 * whether a cloud JWK import (the key in clear inside TLS) is allowed. The
 * default is `pkcs11` only: an HSM-only key never reaches a keystore, a
 * cloud or a key block. Checked at the API (distribute, placements), again
 * where packages are built (from the row-MAC-checked key row), and carried in
 * the signed package so that the listener refuses too.
 */
export interface TargetPolicy {
  targetKinds?: string[];
  allowClearImport?: boolean;
}

export function kindsOf(key: TargetPolicy): string[] {
  return key.targetKinds?.length ? key.targetKinds : [...DEFAULT_TARGET_KINDS];
}

export function kindAllowed(key: TargetPolicy, kind: string): boolean {
  return kindsOf(key).includes(kind);
}

/** TARGET_KIND_NOT_ALLOWED unless the key's policy allows a target of `kind`. */
export function assertKindAllowed(key: TargetPolicy & { name: string }, target: { listenerId: string; target: string; kind: string }): void {
  if (!kindAllowed(key, target.kind)) {
    throw new KeyhubError('TARGET_KIND_NOT_ALLOWED', `key "${key.name}" may reach ${kindsOf(key).join(', ')} targets only; ${target.listenerId}/${target.target} is ${target.kind}`, {
      details: { key: key.name, listenerId: target.listenerId, target: target.target, kind: target.kind },
    });
  }
}

/** What the signed package carries of the policy: nothing for the default (packages stay as they were), else both fields. */
export function packagePolicy(key: TargetPolicy): { targetKinds?: TargetKind[]; allowClearImport?: true } {
  const kinds = [...new Set(kindsOf(key))].sort();
  const clear = key.allowClearImport === true;
  if (kinds.length === 1 && kinds[0] === 'pkcs11' && !clear) return {};
  return { targetKinds: kinds.filter((k): k is TargetKind => (TARGET_KINDS as readonly string[]).includes(k)), ...(clear ? { allowClearImport: true as const } : {}) };
}

/**
 * Whether a new policy reaches further than the old one (a kind added, or
 * clear import allowed): such a change is a dual-control action under
 * `key.target_policy`; a narrowing runs at once.
 */
export function widens(from: TargetPolicy, to: TargetPolicy): boolean {
  const before = new Set(kindsOf(from));
  return kindsOf(to).some((k) => !before.has(k)) || (to.allowClearImport === true && from.allowClearImport !== true);
}
