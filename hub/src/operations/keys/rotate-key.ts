import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { signPackages } from '../../crypto/package-signer';
import { isRotationDue } from '../../domain/key-lifecycle';
import { distributableAlgorithm } from '../../domain/key-spec';
import { assignSequences, countByListener } from '../../domain/sequences';
import { KeyEntity, KeyVersionEntity } from '../../store/entities';
import { advanceCurrentVersions, claimKeys, currentVersions, holdersOfKeys, insertLifecycleVersions, keyByName, setGraceDeadlines, type LifecycleKeyRow } from '../../store/queries/key-lifecycle';
import { allocateSequences, loadKeks } from '../../store/queries/listeners';
import { storeChunk, type ChunkRequest } from '../distributions/distribute-chunk';
import { newRequest } from '../distributions/distribute';
import type { BuiltPackage } from '../distributions/issue-packages';
import { makeKeyVersions, type MadeVersion, type VersionToMake } from './create-key';

export interface RotatedKey {
  key: string;
  /** The new version, now current and active. */
  version: number;
  kcv: string;
  previous: number;
  /** Distributions of the new version queued to the sites that hold the key. */
  queued: number;
  /** When the older versions still active are deactivated (at the sites too); null when there were none. */
  graceUntil: string | null;
}

/** A key's rotation as prepared outside the transaction: the new version, made and packaged. */
interface Prepared {
  key: LifecycleKeyRow;
  item: VersionToMake;
  made: MadeVersion;
  deactivateAt: Date | null;
  requests: ChunkRequest[];
}

/**
 * Rotation: a new version of a key, generated in the hub HSM, becomes the
 * current version, and every site that holds the key (a distribution of any
 * of its versions that is queued, sent or confirmed, at an active listener)
 * is sent the new version. The older versions stay active for the key's
 * grace period, then the scheduler deactivates them, at the sites too
 * (RunKeySchedule, a deactivate command). Sending the new version to the
 * sites that already hold the key does not widen its reach, so it needs no
 * new approval.
 *
 * The HSM work (generation, wrapping under each site's KEK, signatures) is
 * done before the transaction; sequence numbers come from a short
 * transaction of their own, as for Distribute. One transaction then checks
 * under the key row's lock that the key has not moved on (and, for the
 * scheduler, is still due: two replicas never rotate one key twice), and
 * writes the version, the key, the grace deadlines, the distributions with
 * their packages and outbox rows, and the audit events together.
 */
@injectable()
export class RotateKey {
  constructor(private readonly ctx: HubContext) {}

  async execute(name: string, actor: string, reason?: string): Promise<RotatedKey> {
    const key = await keyByName(this.ctx.ds, name);
    if (!key) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${name}"`);
    const [rotated] = await this.rotate([key], actor, { onlyIfDue: false, ...(reason ? { reason } : {}) });
    if (!rotated) throw new KeyhubError('KEY_ROTATION_CONFLICT', `${name} got a new version, or is being changed, while this rotation was prepared`);
    return rotated;
  }

  /** Rotates these keys; with `onlyIfDue`, only those whose rotation interval has passed when checked under their lock. */
  async rotate(keys: LifecycleKeyRow[], actor: string, opts: { onlyIfDue: boolean; reason?: string }): Promise<RotatedKey[]> {
    if (keys.length === 0) return [];
    const prepared = await this.prepare(keys, actor);
    const built = await this.sign(prepared.flatMap((p) => p.requests));
    return this.store(prepared, built, actor, opts);
  }

  private async prepare(keys: LifecycleKeyRow[], actor: string): Promise<Prepared[]> {
    const { ds, keyring } = this.ctx;
    const ids = keys.map((k) => k.id);
    const lengths = new Map((await currentVersions(ds, ids)).map((v) => [v.key_id, v.length]));
    const items: VersionToMake[] = keys.map((k) => ({
      key: {
        id: k.id,
        algorithm: distributableAlgorithm(k.algorithm),
        usages: k.usages,
        exportable: k.exportable,
        sensitive: k.sensitive,
        targetKinds: k.target_kinds,
        allowClearImport: k.allow_clear_import,
      },
      versionId: randomUUID(),
      version: k.current_version + 1,
      length: lengths.get(k.id) ?? 0,
    }));
    const made = await makeKeyVersions(keyring, items);
    const holders = await holdersOfKeys(ds, ids);
    const now = new Date();
    return keys.map((key, i) => {
      const keyEntity = Object.assign(new KeyEntity(), {
        id: key.id,
        name: key.name,
        algorithm: key.algorithm,
        usages: key.usages,
        exportable: key.exportable,
        sensitive: key.sensitive,
        targetKinds: key.target_kinds,
        allowClearImport: key.allow_clear_import,
        state: 'active',
        currentVersion: items[i].version,
      });
      const version = Object.assign(new KeyVersionEntity(), {
        id: items[i].versionId,
        keyId: key.id,
        version: items[i].version,
        wrapped: made[i].wrapped,
        length: items[i].length,
        kcv: made[i].kcv,
        mac: made[i].mac,
        publicKey: made[i].publicKey,
        state: 'active',
      });
      const requests = holders
        .filter((h) => h.key_id === key.id)
        .map((h) =>
          newRequest(keyEntity, version, { listenerId: h.listener_id, target: h.target }, actor, now, { key: key.name, version: version.version, listenerId: h.listener_id, target: h.target }),
        );
      const deactivateAt = key.cryptoperiod_seconds ? new Date(now.getTime() + key.cryptoperiod_seconds * 1000) : null;
      return { key, item: items[i], made: made[i], deactivateAt, requests };
    });
  }

  /** Packages for every request, signed in one HSM batch; sequences from their own short transaction. */
  private async sign(requests: ChunkRequest[]): Promise<BuiltPackage[]> {
    if (requests.length === 0) return [];
    const { ds, keyring, config } = this.ctx;
    const counts = countByListener(requests);
    const keks = await loadKeks(ds, [...counts.keys()]);
    const before = await ds.transaction((tx) => allocateSequences(tx, counts));
    return signPackages(keyring, requests, keks, assignSequences(requests, before), config.delivery.packageTtlSeconds);
  }

  private async store(prepared: Prepared[], built: BuiltPackage[], actor: string, { onlyIfDue, reason }: { onlyIfDue: boolean; reason?: string }): Promise<RotatedKey[]> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const now = new Date();
      const { go, graceOf } = await claimStillRotatable(m, prepared, onlyIfDue, now);
      if (go.length === 0) return [];
      await insertLifecycleVersions(
        m,
        go.map((p) => [p.item.versionId, p.key.id, p.item.version, p.made.wrapped, p.item.length, p.made.kcv, 'active', p.made.mac, now, p.deactivateAt, p.made.publicKey]),
      );
      await advanceCurrentVersions(
        m,
        go.map((p) => ({ id: p.key.id, version: p.item.version })),
      );
      const graced = await setGraceDeadlines(
        m,
        go.map((p) => ({ id: p.key.id, keepVersion: p.item.version, graceSeconds: graceOf.get(p.key.id)! })),
      );
      const requests = go.flatMap((p) => p.requests);
      const mine = new Set(requests.map((r) => r.distribution.id));
      const ours = built.filter((b) => mine.has(b.distributionId));
      const outcome = requests.length ? await storeChunk(m, requests, ours, randomUUID(), actor, now) : { queued: [], skipped: [] };
      const queuedOf = countBy(outcome.queued.map((q) => q.key));
      const graceUntil = new Map<string, number>();
      for (const g of graced) graceUntil.set(g.key_id, Math.max(graceUntil.get(g.key_id) ?? 0, new Date(g.deactivate_at).getTime()));
      const result = go.map((p) => {
        const until = graceUntil.get(p.key.id);
        return {
          key: p.key.name,
          version: p.item.version,
          kcv: p.made.kcv,
          previous: p.key.current_version,
          queued: queuedOf.get(p.key.name) ?? 0,
          graceUntil: until ? new Date(until).toISOString() : null,
        };
      });
      await appendAudit(
        m,
        result.map((r, i) => ({
          actor,
          action: 'key.rotated',
          subject: `key:${r.key}`,
          details: { keyId: go[i].key.id, previous: r.previous, version: r.version, kcv: r.kcv, sites: r.queued, graceUntil: r.graceUntil, scheduled: onlyIfDue, ...(reason ? { reason } : {}) },
        })),
      );
      return result;
    });
  }
}

/**
 * The prepared rotations that may still go ahead, under their key rows' locks
 * (SKIP LOCKED: a key another transaction holds is left to it): the key has
 * not got another version meanwhile and, for the scheduler, is still due.
 */
async function claimStillRotatable(m: EntityManager, prepared: Prepared[], onlyIfDue: boolean, now: Date): Promise<{ go: Prepared[]; graceOf: Map<string, number> }> {
  const claimed = new Map(
    (
      await claimKeys(
        m,
        prepared.map((p) => p.key.id),
      )
    ).map((k) => [k.id, k]),
  );
  const current = new Map((await currentVersions(m, [...claimed.keys()])).map((v) => [v.key_id, v]));
  const go = prepared.filter((p) => {
    const k = claimed.get(p.key.id);
    if (!k || k.current_version !== p.key.current_version) return false;
    const v = current.get(k.id);
    return !onlyIfDue || (v?.state === 'active' && isRotationDue(now, v.activate_at, k.rotate_every_seconds));
  });
  return { go, graceOf: new Map([...claimed.values()].map((k) => [k.id, k.grace_seconds])) };
}

function countBy(values: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}
