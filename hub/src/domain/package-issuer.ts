import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { encodeEnvelope, KEY_ALGORITHMS, MESSAGE_TYPES, subjects, type KeyAlgorithm, type KeyPackage, type KeyUsage } from '@keyhub/protocol';
import { KeyhubError, mapConcurrent, type KeyHandle } from '@keyhub/shared';
import type { HubKeyring } from '../crypto/hub-keyring';
import { insertRows, notifyOutbox } from '../store/sql';
import type { DistributionEntity, KeyEntity, KeyVersionEntity } from '../store/entities';

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
 * caller's transaction. Sequence numbers come from the listener row, locked
 * until commit, so they are unique per listener. Key versions and KEKs are
 * unwrapped from the master key once per batch into session objects and
 * destroyed at the end; the wraps and signatures run on all HSM sessions.
 */
export async function issuePackages(m: EntityManager, keyring: HubKeyring, requests: PackageRequest[], ttlSeconds: number): Promise<IssuedPackage[]> {
  if (requests.length === 0) return [];
  const counts = new Map<string, number>();
  for (const r of requests) counts.set(r.distribution.listenerId, (counts.get(r.distribution.listenerId) ?? 0) + 1);
  const listenerIds = [...counts.keys()].sort();
  const hsm = keyring.hsm;
  const keyHandles = new Map<string, KeyHandle>();
  const kekHandles = new Map<string, { handle: KeyHandle; id: string; version: number }>();
  try {
    // Lock listener rows in a fixed order (no deadlock between concurrent batches), then take
    // each listener's block of sequence numbers in one statement.
    await m.query('SELECT id FROM listeners WHERE id = ANY($1) ORDER BY id FOR UPDATE', [listenerIds]);
    const seqRows: Array<{ id: string; last_sequence: string }> = await m.query(
      `WITH u AS (UPDATE listeners l SET last_sequence = l.last_sequence + v.n
                    FROM (SELECT unnest($1::text[]) AS id, unnest($2::int[]) AS n) v WHERE l.id = v.id
                  RETURNING l.id, l.last_sequence) SELECT id, last_sequence FROM u`,
      [listenerIds, listenerIds.map((id) => counts.get(id)!)],
    );
    const nextSeq = new Map(seqRows.map((r) => [r.id, Number(r.last_sequence) - counts.get(r.id)!]));
    const keks: Array<{ listener_id: string; id: string; version: number; wrapped: Buffer }> = await m.query(
      `SELECT DISTINCT ON (listener_id) listener_id, id, version, wrapped FROM keks
        WHERE listener_id = ANY($1) AND state = 'active' ORDER BY listener_id, version DESC`,
      [listenerIds],
    );
    const missing = listenerIds.filter((id) => !keks.some((k) => k.listener_id === id));
    if (missing.length) throw new KeyhubError('NOT_ENROLLED', `listener ${missing[0]} has no active root KEK`);

    // Unwrap each KEK and key version once for the whole batch, as session objects.
    await mapConcurrent(keks, hsm.concurrency, async (k) => {
      kekHandles.set(k.listener_id, { handle: await keyring.unwrapFromMaster(k.wrapped, 32, { wrap: true }), id: k.id, version: k.version });
    });
    const versions = [...new Map(requests.map((r) => [r.version.id, r.version])).values()];
    await mapConcurrent(versions, hsm.concurrency, async (v) => {
      keyHandles.set(v.id, await keyring.unwrapFromMaster(v.wrapped, v.length, { extractable: true }));
    });

    const planned = requests.map((r) => {
      const seq = nextSeq.get(r.distribution.listenerId)! + 1;
      nextSeq.set(r.distribution.listenerId, seq);
      return { r, sequence: seq };
    });
    // Wrap + sign is the per-package HSM work: keep every pooled session busy.
    const built = await mapConcurrent(planned, hsm.concurrency, async ({ r, sequence }) => {
      const listenerId = r.distribution.listenerId;
      const kek = kekHandles.get(listenerId)!;
      const blob = await hsm.wrapKwp(kek.handle, keyHandles.get(r.version.id)!);
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
        wrapping: { kekId: kek.id, kekVersion: kek.version, mechanism: 'AES-KWP', blob: blob.toString('base64') },
      };
      const envelope = await keyring.sign(payload);
      return { payload, issuedAt, expiresAt, bytes: Buffer.from(encodeEnvelope(envelope)) };
    });
    await insertRows(m, 'packages', ['id', 'distribution_id', 'listener_id', 'sequence', 'issued_at', 'expires_at'],
      built.map((b) => [b.payload.id, b.payload.distributionId, b.payload.listenerId, b.payload.sequence, b.issuedAt, b.expiresAt]));
    await insertRows(m, 'outbox', ['subject', 'msg_id', 'payload', 'distribution_id'],
      built.map((b) => [subjects.toListener(b.payload.listenerId, 'package'), b.payload.id, b.bytes, b.payload.distributionId]));
    await notifyOutbox(m);
    return built.map((b) => ({ packageId: b.payload.id, distributionId: b.payload.distributionId, sequence: b.payload.sequence }));
  } finally {
    for (const h of keyHandles.values()) await hsm.destroy(h).catch(() => undefined);
    for (const { handle } of kekHandles.values()) await hsm.destroy(handle).catch(() => undefined);
  }
}

function asAlgorithm(value: string): KeyAlgorithm {
  if ((KEY_ALGORITHMS as readonly string[]).includes(value)) return value as KeyAlgorithm;
  throw new KeyhubError('INPUT_INVALID', `algorithm ${value} cannot be distributed`);
}
