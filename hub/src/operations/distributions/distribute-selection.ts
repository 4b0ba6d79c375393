import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { isDistributable } from '../../domain/key-lifecycle';
import { everyTarget, expandDestinations, type Destination } from '../../domain/distribute-plan';
import type { KeyEntity, KeyVersionEntity } from '../../store/entities';
import { findKeysByName, findKeysByPrefix, findKeyVersions } from '../../store/queries/keys';
import { activeListenerTargets, listenerTargets } from '../../store/queries/listeners';

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

/** The (listener, target) pairs a distribute call names ('all': every target of every active listener). */
export async function resolveDestinations(m: EntityManager, to: Destination[] | 'all'): Promise<Array<{ listenerId: string; target: string }>> {
  if (to === 'all') return everyTarget(await activeListenerTargets(m));
  if (to.length === 0) throw new KeyhubError('INPUT_INVALID', 'no destination given');
  const rows = await listenerTargets(m, [...new Set(to.map((d) => d.listenerId))]);
  return expandDestinations(to, new Map(rows.map((l) => [l.id, l])));
}
