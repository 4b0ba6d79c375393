import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { encodeEnvelope, KEY_ALGORITHMS, MESSAGE_TYPES, subjects, type KeyAlgorithm, type KeyPackage, type KeyUsage } from '@keyhub/protocol';
import { KeyhubError, type KeyHandle } from '@keyhub/shared';
import type { HubKeyring } from '../crypto/hub-keyring';
import { insertRows, notifyOutbox } from '../store/sql';
import type { DistributionEntity, KekEntity, KeyEntity, KeyVersionEntity } from '../store/entities';

export interface PackageRequest {
  distribution: DistributionEntity;
  key: KeyEntity;
  version: KeyVersionEntity;
}

export interface IssuedPackage {
  packageId: string;
  distributionId: string;
  sequence: number;
}

/**
 * Turns distributions into signed key packages in the outbox, inside the
 * caller's transaction. Sequence numbers come from the listener row, which
 * the UPDATE locks until commit, so they are unique and gap-free per listener.
 * Key versions and KEKs are unwrapped from the master key once per batch into
 * session objects and destroyed at the end.
 */
export async function issuePackages(m: EntityManager, keyring: HubKeyring, requests: PackageRequest[], ttlSeconds: number): Promise<IssuedPackage[]> {
  if (requests.length === 0) return [];
  const byListener = new Map<string, PackageRequest[]>();
  for (const r of requests) {
    const list = byListener.get(r.distribution.listenerId) ?? [];
    list.push(r);
    byListener.set(r.distribution.listenerId, list);
  }
  const keyHandles = new Map<string, KeyHandle>();
  const kekHandles = new Map<string, { handle: KeyHandle; kek: KekEntity }>();
  const issued: IssuedPackage[] = [];
  const outboxRows: unknown[][] = [];
  const packageRows: unknown[][] = [];
  try {
    // Listener rows are locked in a fixed order so that concurrent batches cannot deadlock.
    for (const listenerId of [...byListener.keys()].sort()) {
      const list = byListener.get(listenerId)!;
      const kek = await m.query(
        `SELECT id, version, wrapped, kcv FROM keks WHERE listener_id = $1 AND state = 'active' ORDER BY version DESC LIMIT 1`,
        [listenerId],
      );
      if (kek.length === 0) throw new KeyhubError('NOT_ENROLLED', `listener ${listenerId} has no active root KEK`);
      const [{ last_sequence }] = await m.query(
        'WITH u AS (UPDATE listeners SET last_sequence = last_sequence + $2 WHERE id = $1 RETURNING last_sequence) SELECT last_sequence FROM u',
        [listenerId, list.length],
      );
      let sequence = Number(last_sequence) - list.length;
      let kekEntry = kekHandles.get(listenerId);
      if (!kekEntry) {
        const k = kek[0] as { id: string; version: number; wrapped: Buffer; kcv: string };
        kekEntry = { handle: await keyring.unwrapFromMaster(k.wrapped, 32, { wrap: true }), kek: { id: k.id, version: k.version } as KekEntity };
        kekHandles.set(listenerId, kekEntry);
      }
      for (const r of list) {
        sequence += 1;
        let keyHandle = keyHandles.get(r.version.id);
        if (!keyHandle) {
          keyHandle = await keyring.unwrapFromMaster(r.version.wrapped, r.version.length, { extractable: true });
          keyHandles.set(r.version.id, keyHandle);
        }
        const blob = await keyring.hsm.wrapKwp(kekEntry.handle, keyHandle);
        const issuedAt = new Date();
        const expiresAt = new Date(issuedAt.getTime() + ttlSeconds * 1000);
        const payload: KeyPackage = {
          type: MESSAGE_TYPES.keyPackage,
          id: randomUUID(),
          listenerId,
          target: r.distribution.target,
          distributionId: r.distribution.id,
          sequence,
          issuedAt: issuedAt.toISOString(),
          expiresAt: expiresAt.toISOString(),
          key: {
            id: r.key.id,
            name: r.key.name,
            version: r.version.version,
            algorithm: asAlgorithm(r.key.algorithm),
            length: r.version.length,
            usages: r.key.usages as KeyUsage[],
            exportable: r.key.exportable,
            kcv: r.version.kcv,
          },
          wrapping: { kekId: kekEntry.kek.id, kekVersion: kekEntry.kek.version, mechanism: 'AES-KWP', blob: blob.toString('base64') },
        };
        const envelope = await keyring.sign(payload);
        outboxRows.push([subjects.toListener(listenerId, 'package'), payload.id, Buffer.from(encodeEnvelope(envelope)), r.distribution.id]);
        packageRows.push([payload.id, r.distribution.id, listenerId, sequence, issuedAt, expiresAt]);
        issued.push({ packageId: payload.id, distributionId: r.distribution.id, sequence });
      }
    }
    await insertRows(m, 'packages', ['id', 'distribution_id', 'listener_id', 'sequence', 'issued_at', 'expires_at'], packageRows);
    await insertRows(m, 'outbox', ['subject', 'msg_id', 'payload', 'distribution_id'], outboxRows);
    await notifyOutbox(m);
    return issued;
  } finally {
    for (const h of keyHandles.values()) await keyring.hsm.destroy(h).catch(() => undefined);
    for (const { handle } of kekHandles.values()) await keyring.hsm.destroy(handle).catch(() => undefined);
  }
}

function asAlgorithm(value: string): KeyAlgorithm {
  if ((KEY_ALGORITHMS as readonly string[]).includes(value)) return value as KeyAlgorithm;
  throw new KeyhubError('INPUT_INVALID', `algorithm ${value} cannot be distributed`);
}
