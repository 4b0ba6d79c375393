import { aesKcv, KeyhubError, type Hsm, type KeyInfo, type Logger } from '@keyhub/shared';
import { inventoryItemSchema, storableText, type InventoryItemReport } from '@keyhub/protocol';
import { IDENTITY_LABEL, TARGET_TRANSPORT_LABEL, TRANSPORT_LABEL } from '../listener-keys';
import { objectId as objectIdOf, refFromId } from '../targets/pkcs11-target';
import type { Target } from '../targets/target';
import { indexKey, type InventoryIndex } from './inventory-index';

/** A pkcs11 target as configured: its name and the label prefix of what it imports. */
export interface TokenTarget {
  name: string;
  labelPrefix: string;
}

const USAGE_FLAGS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap'] as const;
/** The listener's own objects in its token (identity, transport, root KEKs): never inventory. */
const OWN_KEK = /^keyhub-kek:[0-9a-f-]+:v\d+$/;
/** The transit KEKs of keystore, cloud and TR-31 targets and the TR-31 KBPKs (transit-keys.ts, tr31-target.ts): the listener's, in its own token, never inventory. */
const OWN_TARGET_KEY = /^keyhub-(transit-kek|tr31-kbpk):/;

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
 * issue 12) and other targets, the caller gathers the index keys (target and
 * object id) of every target and prunes the index once
 * (InventoryIndex.retainOnly) instead of after each token.
 */
export async function collectTokenInventory(hsm: Hsm, targets: readonly TokenTarget[], index: InventoryIndex, seen?: Set<string>): Promise<InventoryItemReport[]> {
  if (targets.length === 0) return [];
  const handles = [...(await hsm.findKeys({ class: 'secret', token: true })), ...(await hsm.findKeys({ class: 'private', token: true }))];
  const items: InventoryItemReport[] = [];
  const present = new Set<string>();
  for (const h of handles) {
    const info = await hsm.keyInfo(h);
    if (info.label === IDENTITY_LABEL || info.label === TRANSPORT_LABEL || info.label === TARGET_TRANSPORT_LABEL || OWN_KEK.test(info.label) || OWN_TARGET_KEY.test(info.label)) continue;
    const objectId = info.id.toString('hex');
    const entry = index.find(
      objectId,
      targets.map((t) => t.name),
    );
    const target = entry?.target ?? targetByLabel(targets, info.label);
    present.add(indexKey(target, objectId));
    const ref = refFromId(info.id);
    const keyRef = ref && ref.version >= 1 ? ref : undefined;
    const item: InventoryItemReport = {
      target,
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
  else index.retainOnly(present, new Set(targets.map((t) => t.name)));
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

/**
 * What a keystore, cloud or TR-31 target holds, as inventory items: its own
 * inventory() (the target's index of what it wrote, checked against the
 * keystore file, the cloud, the payment HSM). Each item has the Keyhub
 * identity of the version, the objectId a token would give it (CKA_ID
 * shape, pkcs11-target.ts objectId), and a KCV: the one the target vouches
 * for (cloud: computed over the material sent; payment HSM: computed by
 * it), else the one verified in the token at import (index), else none.
 * State: 'disabled' when the target switched the version off (a cloud's
 * disabled key version); a keystore entry has no flags and is 'active'.
 *
 * undefined when the target cannot be read now (keystore unreadable, cloud
 * or payment HSM down): the report then leaves it out instead of calling
 * every key there missing.
 */
export async function collectTargetInventory(target: Target, index: InventoryIndex, seen: Set<string>, logger?: Pick<Logger, 'warn'>): Promise<InventoryItemReport[] | undefined> {
  let held;
  try {
    held = await target.inventory();
  } catch (err) {
    const e = KeyhubError.from(err);
    logger?.warn({ target: target.name, code: e.code }, 'target inventory not readable; left out of this report');
    return undefined;
  }
  const items: InventoryItemReport[] = [];
  for (const h of held) {
    let objectId: string;
    try {
      objectId = objectIdOf(h).toString('hex');
    } catch {
      continue;
    }
    seen.add(indexKey(target.name, objectId));
    const vouched = h.kcv?.toLowerCase();
    const kcv = vouched !== undefined && /^[0-9a-f]{6}$/.test(vouched) ? vouched : index.get(target.name, objectId)?.kcv;
    const item: InventoryItemReport = {
      target: target.name,
      objectId,
      keyId: h.keyId,
      version: h.version,
      label: storableText(h.label, 128),
      ...(kcv ? { kcv } : {}),
      state: h.enabled ? 'active' : 'disabled',
    };
    // An index entry the schema refuses (a damaged target index) is left out rather than sent malformed.
    if (inventoryItemSchema.safeParse(item).success) items.push(item);
  }
  return items;
}
