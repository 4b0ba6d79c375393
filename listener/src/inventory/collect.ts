import { aesKcv, type Hsm, type KeyInfo } from '@keyhub/shared';
import { inventoryItemSchema, storableText, type InventoryItemReport } from '@keyhub/protocol';
import { IDENTITY_LABEL, TARGET_TRANSPORT_LABEL, TRANSPORT_LABEL } from '../listener-keys';
import { refFromId } from '../targets/pkcs11-target';
import type { InventoryIndex } from './inventory-index';

/** A pkcs11 target as configured: its name and the label prefix of what it imports. */
export interface TokenTarget {
  name: string;
  labelPrefix: string;
}

const USAGE_FLAGS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap'] as const;
/** The listener's own objects in its token (identity, transport, root KEKs): never inventory. */
const OWN_KEK = /^keyhub-kek:[0-9a-f-]+:v\d+$/;

/**
 * What the listener's token holds, as inventory items. Every pkcs11 target
 * is the listener's own token (runtime.ts), so the token is read once and
 * each object is given to the target that imported it (from the index), or
 * by label prefix, or to the first target. For each object:
 * - keyId/version from its CKA_ID when it has Keyhub's shape (16-byte UUID
 *   and a 4-byte version), else only its objectId (planted, foreign);
 * - KCV: computed in the token where that is cheap (an AES key with
 *   CKA_SIGN: one CMAC), else the one verified at import (index), else none;
 * - state: 'active' when the usages granted at import are all still on,
 *   'disabled' when some are off (suspended or deactivated at this site).
 *   Without an index entry, an object with no usage at all is 'disabled'.
 */
/**
 * `seen`: for a report over several tokens (targets with a token of their own,
 * issue 12), the caller gathers the object ids of every token and prunes the
 * index once (InventoryIndex.retainOnly) instead of after each token.
 */
export async function collectTokenInventory(hsm: Hsm, targets: readonly TokenTarget[], index: InventoryIndex, seen?: Set<string>): Promise<InventoryItemReport[]> {
  if (targets.length === 0) return [];
  const handles = [...(await hsm.findKeys({ class: 'secret', token: true })), ...(await hsm.findKeys({ class: 'private', token: true }))];
  const items: InventoryItemReport[] = [];
  const present = new Set<string>();
  for (const h of handles) {
    const info = await hsm.keyInfo(h);
    if (info.label === IDENTITY_LABEL || info.label === TRANSPORT_LABEL || info.label === TARGET_TRANSPORT_LABEL || OWN_KEK.test(info.label)) continue;
    const objectId = info.id.toString('hex');
    present.add(objectId);
    const entry = index.get(objectId);
    const ref = refFromId(info.id);
    const keyRef = ref && ref.version >= 1 ? ref : undefined;
    const item: InventoryItemReport = {
      target: entry?.target ?? targetByLabel(targets, info.label),
      objectId: objectId.slice(0, 256),
      ...(keyRef ? { keyId: keyRef.keyId, version: keyRef.version } : {}),
      label: storableText(info.label, 128),
      ...kcvOf(await tokenKcv(hsm, info), entry?.kcv),
      state: stateOf(info, entry?.usages),
    };
    // A CKA_ID of Keyhub's length that is no valid key id (planted bytes) is reported as a foreign object.
    if (inventoryItemSchema.safeParse(item).success) items.push(item);
    else {
      const { keyId: _keyId, version: _version, ...foreign } = item;
      items.push(foreign);
    }
  }
  if (seen) for (const id of present) seen.add(id);
  else index.retainOnly(present);
  return items;
}

function kcvOf(token: string | undefined, indexed: string | undefined): { kcv?: string } {
  const kcv = token ?? indexed;
  return kcv ? { kcv } : {};
}

/** The AES CMAC KCV when the object allows it (CKA_SIGN); other types keep the KCV verified at import. */
async function tokenKcv(hsm: Hsm, info: KeyInfo): Promise<string | undefined> {
  if (info.class !== 'secret' || info.keyType !== 'aes' || !info.sign) return undefined;
  try {
    return await aesKcv(hsm, info.handle);
  } catch {
    // A token that refuses the CMAC leaves the index's KCV in place.
    return undefined;
  }
}

/** A private key carries only these of its pair's usages; the others live on the public half. */
const PRIVATE_FLAGS = ['decrypt', 'sign', 'unwrap'] as const;

function stateOf(info: KeyInfo, granted: string[] | undefined): 'active' | 'disabled' {
  const flags: readonly (typeof USAGE_FLAGS)[number][] = info.class === 'private' ? PRIVATE_FLAGS : USAGE_FLAGS;
  if (!granted) return flags.some((u) => info[u]) ? 'active' : 'disabled';
  const checked = flags.filter((u) => granted.includes(u));
  return checked.every((u) => info[u]) ? 'active' : 'disabled';
}

function targetByLabel(targets: readonly TokenTarget[], label: string): string {
  const byPrefix = targets.filter((t) => t.labelPrefix && label.startsWith(t.labelPrefix)).sort((a, b) => b.labelPrefix.length - a.labelPrefix.length);
  return (byPrefix[0] ?? targets[0]).name;
}
