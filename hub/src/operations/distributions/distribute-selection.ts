import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { isDistributable } from '../../domain/key-lifecycle';
import { everyTarget, expandDestinations, type Destination } from '../../domain/distribute-plan';
import type { KeyEntity, KeyVersionEntity } from '../../store/entities';
import { findKeysByName, findKeysByPrefix, findKeyVersions } from '../../store/queries/keys';
import { activeListenerTargets, listenerTargets, type ListenerTargetsRow } from '../../store/queries/listeners';
import { isHeldTarget } from '../../store/queries/target-updates';
import { assertKindAllowed, kindAllowed } from '../../domain/target-policy';

// Not a use case: what a distribute call names, read and checked (part of distribute.ts).

export interface KeySelector {
  name: string;
  /** Omitted: the key's current version. */
  version?: number;
}

/** Named keys, or every key whose name starts with `prefix` (current versions). */
export type KeySelection = KeySelector[] | { prefix: string };

/** The keys and versions a distribute call names; each version must exist and be active. */
export async function resolveKeys(m: EntityManager, keys: KeySelection): Promise<Array<{ key: KeyEntity; version: KeyVersionEntity }>> {
  let found: KeyEntity[];
  const wanted = new Map<string, number | undefined>();
  if ('prefix' in keys) {
    if (!keys.prefix) throw new KeyhubError('INPUT_INVALID', 'key prefix must not be empty');
    found = await findKeysByPrefix(m, keys.prefix);
    if (found.length === 0) throw new KeyhubError('KEY_NOT_FOUND', `no key name starts with "${keys.prefix}"`);
  } else {
    if (keys.length === 0) throw new KeyhubError('INPUT_INVALID', 'no key given');
    for (const k of keys) wanted.set(k.name, k.version);
    const byName = new Map((await findKeysByName(m, [...wanted.keys()])).map((k) => [k.name, k]));
    const missing = [...wanted.keys()].find((n) => !byName.has(n));
    if (missing) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${missing}"`);
    // In the order given: packages are issued in that order, and the result lists them so.
    found = [...wanted.keys()].map((n) => byName.get(n)!);
  }
  const versionOf = (k: KeyEntity) => wanted.get(k.name) ?? k.currentVersion;
  const versions = await findKeyVersions(
    m,
    found.map((k) => k.id),
    found.map(versionOf),
  );
  const byKey = new Map(versions.map((v) => [v.keyId, v]));
  return found.map((key) => {
    const version = byKey.get(key.id);
    if (!version) throw new KeyhubError('KEY_NOT_FOUND', `key "${key.name}" has no version ${versionOf(key)}`);
    if (!isDistributable(version.state)) throw new KeyhubError('KEY_VERSION_NOT_ACTIVE', `version ${version.version} of "${key.name}" is ${version.state}: only active versions are distributed`);
    return { key, version };
  });
}

/** A destination with its target's kind; `named`: the call named this target (not "every target of"). */
export interface ResolvedDestination {
  listenerId: string;
  target: string;
  kind: string;
  named: boolean;
}

/** The (listener, target) pairs a distribute call names ('all': every target of every active listener). */
export async function resolveDestinations(m: EntityManager, to: Destination[] | 'all'): Promise<ResolvedDestination[]> {
  if (to === 'all') {
    const rows = await activeListenerTargets(m);
    return withKinds(everyTarget(rows), rows, []);
  }
  if (to.length === 0) throw new KeyhubError('INPUT_INVALID', 'no destination given');
  const rows = await listenerTargets(m, [...new Set(to.map((d) => d.listenerId))]);
  const byId = new Map(rows.map((l) => [l.id, l]));
  // A named target the site may not receive on yet (update awaiting approval) or any more (removed): its own code.
  for (const d of to) {
    const l = byId.get(d.listenerId);
    if (d.target !== undefined && l && !l.targets.some((t) => t.name === d.target) && (await isHeldTarget(m, d.listenerId, d.target))) {
      throw new KeyhubError('TARGET_NOT_APPROVED', `target ${d.target} of ${d.listenerId} awaits approval of its signed update, or was removed`);
    }
  }
  return withKinds(expandDestinations(to, byId), rows, to);
}

function withKinds(pairs: Array<{ listenerId: string; target: string }>, rows: ListenerTargetsRow[], to: Destination[]): ResolvedDestination[] {
  const byId = new Map(rows.map((l) => [l.id, l]));
  return pairs.map((p) => ({
    ...p,
    kind: byId.get(p.listenerId)?.targets.find((t) => t.name === p.target)?.kind ?? 'pkcs11',
    named: to.some((d) => d.listenerId === p.listenerId && d.target === p.target),
  }));
}

/**
 * The destinations each key may reach under its target policy (issue 12):
 * a target the call names whose kind the policy does not allow is refused
 * (TARGET_KIND_NOT_ALLOWED); "every target of" a site means every allowed
 * one; a key with no allowed destination at all is refused too.
 */
export function allowedDestinations(key: KeyEntity, pairs: ResolvedDestination[]): ResolvedDestination[] {
  const allowed = pairs.filter((p) => {
    if (kindAllowed(key, p.kind)) return true;
    if (p.named) assertKindAllowed(key, p);
    return false;
  });
  if (allowed.length === 0 && pairs.length > 0) assertKindAllowed(key, pairs[0]);
  return allowed;
}
