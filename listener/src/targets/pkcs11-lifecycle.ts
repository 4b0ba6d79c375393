import type { KeyUsage } from '@keyhub/protocol';
import { KeyhubError, type Hsm, type KeyHandle, type KeyClass, type UsageFlags } from '@keyhub/shared';
import type { LifecycleEffect } from './target';

/*
 * What the lifecycle states mean in a PKCS#11 token (listener/src/targets):
 * - suspended: every usage flag off (C_SetAttributeValue CKA_ENCRYPT, DECRYPT,
 *   SIGN, VERIFY, WRAP, UNWRAP, DERIVE false); resume sets them back to the
 *   key's policy. A token that refuses to change them: the object is
 *   destroyed instead ('destroyed'), and the hub must push the version again
 *   on resume.
 * - deactivated (SP 800-57: no new protection, old data may be processed):
 *   encrypt, sign, wrap, derive off; decrypt, verify, unwrap as the policy
 *   gave them. A token that refuses: the command fails with
 *   COMMAND_NOT_APPLICABLE (destroying would lose the old data's key).
 * - compromised: every usage off, like suspended, but for good (the site also
 *   refuses every later package of the version, state/tombstones.ts); a token
 *   that refuses to switch usages off gets the object destroyed. We disable
 *   rather than destroy so that an operator at the site can still recover
 *   data under a deliberate procedure (SP 800-57 5.3.4 lets compromised keys
 *   process, never protect); destroy is its own command.
 * - destroyed: C_DestroyObject on every object of the version.
 * Checked on SoftHSM2 2.6.1: objects made by C_UnwrapKey are CKA_MODIFIABLE,
 * and their usage flags switch off and on (shared/src/hsm/pkcs11/usages.ts).
 * A PIN holder can switch them on again: suspension and deactivation are
 * operational controls; only destroy is irreversible.
 */

const ALL: ReadonlyArray<keyof UsageFlags> = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'];
/** The flags each class of object has (a public key has no CKA_DECRYPT, a private key no CKA_ENCRYPT). */
const BY_CLASS: Record<KeyClass, ReadonlyArray<keyof UsageFlags>> = {
  secret: ALL,
  private: ['decrypt', 'sign', 'unwrap', 'derive'],
  public: ['encrypt', 'verify', 'wrap'],
  other: [],
};
/** Usages that apply protection (SP 800-57 deactivated: these go off). */
const PROTECT: ReadonlySet<keyof UsageFlags> = new Set(['encrypt', 'sign', 'wrap', 'derive']);

export type LifecycleAction = 'suspend' | 'resume' | 'deactivate' | 'compromise';

/** The flags an action sets, given the policy's usages. */
export function lifecycleFlags(action: LifecycleAction, usages: readonly KeyUsage[]): UsageFlags {
  const policy = new Set<string>(usages);
  const flags: UsageFlags = {};
  for (const f of ALL) {
    if (action === 'resume') flags[f] = policy.has(f);
    else if (action === 'deactivate') flags[f] = PROTECT.has(f) ? false : policy.has(f);
    else flags[f] = false;
  }
  return flags;
}

/** How tokens say "this object's flags may not change". */
const REFUSALS: ReadonlySet<string> = new Set(['CKR_ATTRIBUTE_READ_ONLY', 'CKR_ACTION_PROHIBITED', 'CKR_ATTRIBUTE_TYPE_INVALID', 'CKR_ATTRIBUTE_VALUE_INVALID', 'CKR_TEMPLATE_INCONSISTENT']);

const EFFECT: Record<LifecycleAction, LifecycleEffect> = { suspend: 'usages_off', resume: 'usages_restored', deactivate: 'protect_usages_off', compromise: 'usages_off' };

/** Carries out `action` on the version's objects (`handles`); see the table above. */
export async function applyLifecycle(hsm: Hsm, handles: KeyHandle[], action: LifecycleAction, usages: readonly KeyUsage[]): Promise<LifecycleEffect> {
  if (handles.length === 0) return 'absent';
  const flags = lifecycleFlags(action, usages);
  try {
    for (const h of handles) {
      const info = await hsm.keyInfo(h);
      const own: UsageFlags = {};
      for (const f of BY_CLASS[info.class]) own[f] = flags[f];
      await hsm.setUsages(h, own);
    }
    return EFFECT[action];
  } catch (err) {
    const ckr = KeyhubError.is(err) ? err.ckr : undefined;
    // Anything but a refusal (a session or device trouble) is passed on: the command is tried again, nothing destroyed.
    if (!ckr || !REFUSALS.has(ckr)) throw err;
    if (action === 'suspend' || action === 'compromise') {
      // The token will not switch usages: it must not stay usable, so the object goes (re-pushed on resume).
      for (const h of handles) await hsm.destroy(h);
      return 'destroyed';
    }
    throw new KeyhubError('COMMAND_NOT_APPLICABLE', `token "${hsm.tokenLabel}" refused to change the key's usages for ${action}`, { cause: err, ckr });
  }
}
