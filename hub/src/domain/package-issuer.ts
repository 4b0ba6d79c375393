import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { encodeEnvelope, KEY_ALGORITHMS, MESSAGE_TYPES, subjects, type KeyAlgorithm, type KeyPackage, type KeyUsage } from '@keyhub/protocol';
import { KeyhubError, type WrappedAesKey } from '@keyhub/shared';
import type { HubKeyring } from '../crypto/hub-keyring';
import { notifyOutbox } from '../store/sql';
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

/** A signed package held in memory until it is written to the outbox. */
export interface BuiltPackage extends IssuedPackage {
  listenerId: string;
  issuedAt: Date;
  expiresAt: Date;
  bytes: Buffer;
}

/** A listener's current root KEK as stored: wrapped under the hub master key. */
export interface StoredKek {
  listener_id: string;
  id: string;
  version: number;
  wrapped: Buffer;
}

/**
 * Takes a block of sequence numbers per listener (one statement) and returns,
 * per listener, the last number before its block. The counters' rows
 * (listener_sequences, created on first use) stay locked until the caller's
 * transaction ends, so blocks never overlap; they are taken in listener id
 * order, so concurrent calls cannot deadlock. A block that ends up unused
 * (the batch fails) only leaves a gap, which the listener's replay window
 * accepts.
 */
export async function allocateSequences(m: EntityManager, counts: Map<string, number>): Promise<Map<string, number>> {
  const listenerIds = [...counts.keys()].sort();
  const rows: Array<{ listener_id: string; last_sequence: string }> = await m.query(
    `INSERT INTO listener_sequences AS s (listener_id, last_sequence)
     SELECT v.id, v.n FROM unnest($1::text[], $2::int[]) AS v(id, n) ORDER BY v.id
     ON CONFLICT (listener_id) DO UPDATE SET last_sequence = s.last_sequence + EXCLUDED.last_sequence
     RETURNING listener_id, last_sequence`,
    [listenerIds, listenerIds.map((id) => counts.get(id)!)],
  );
  return new Map(rows.map((r) => [r.listener_id, Number(r.last_sequence) - counts.get(r.listener_id)!]));
}

/** The active root KEK of each listener; NOT_ENROLLED when one has none. */
export async function loadKeks(m: Pick<EntityManager, 'query'>, listenerIds: string[]): Promise<Map<string, StoredKek>> {
  const keks: StoredKek[] = await m.query(
    `SELECT DISTINCT ON (listener_id) listener_id, id, version, wrapped FROM keks
      WHERE listener_id = ANY($1) AND state = 'active' ORDER BY listener_id, version DESC`,
    [listenerIds],
  );
  const byListener = new Map(keks.map((k) => [k.listener_id, k]));
  const missing = listenerIds.find((id) => !byListener.has(id));
  if (missing) throw new KeyhubError('NOT_ENROLLED', `listener ${missing} has no active root KEK`);
  return byListener;
}

/**
 * The sequence number of each request, in request order, from the blocks
 * `allocateSequences` returned (the number before each listener's block).
 */
export function assignSequences(requests: PackageRequest[], before: Map<string, number>): number[] {
  const next = new Map(before);
  return requests.map((r) => {
    const n = next.get(r.distribution.listenerId)! + 1;
    next.set(r.distribution.listenerId, n);
    return n;
  });
}

/** Counts requests per listener, the input of `allocateSequences`. */
export function countByListener(requests: PackageRequest[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of requests) counts.set(r.distribution.listenerId, (counts.get(r.distribution.listenerId) ?? 0) + 1);
  return counts;
}

/**
 * The HSM part of issuing, no database: the HSM re-wraps each request's key
 * version under its listener's root KEK (`HubKeyring.translate`: every key
 * version and KEK of the batch unwrapped once from the master key into a
 * session object, destroyed at the end); the whole batch is signed with one
 * HSM signature over the Merkle root of its packages (ES256-MERKLE, see
 * protocol/src/envelope.ts). `sequences` holds each request's sequence
 * number; it is awaited only when the payloads are built, so the HSM work can
 * start while the database still allocates them.
 */
export async function signPackages(
  keyring: HubKeyring,
  requests: PackageRequest[],
  keks: Map<string, StoredKek>,
  sequences: Promise<number[]> | number[],
  ttlSeconds: number,
): Promise<BuiltPackage[]> {
  if (requests.length === 0) return [];
  const kekIndex = new Map<string, number>();
  const keyIndex = new Map<string, number>();
  const kekBlobs: WrappedAesKey[] = [];
  const keyBlobs: WrappedAesKey[] = [];
  const pairs = new Uint32Array(requests.length * 2);
  requests.forEach((r, i) => {
    const listenerId = r.distribution.listenerId;
    let k = kekIndex.get(listenerId);
    if (k === undefined) {
      k = kekBlobs.push({ blob: keks.get(listenerId)!.wrapped, lengthBytes: 32 }) - 1;
      kekIndex.set(listenerId, k);
    }
    let v = keyIndex.get(r.version.id);
    if (v === undefined) {
      v = keyBlobs.push({ blob: r.version.wrapped, lengthBytes: r.version.length }) - 1;
      keyIndex.set(r.version.id, v);
    }
    pairs[2 * i] = k;
    pairs[2 * i + 1] = v;
  });
  const blobs = await keyring.translate(kekBlobs, keyBlobs, pairs);
  const sequenceOf = await sequences;
  const issuedAt = new Date();
  const expiresAt = new Date(issuedAt.getTime() + ttlSeconds * 1000);
  const payloads: KeyPackage[] = requests.map((r, i) => {
    const listenerId = r.distribution.listenerId;
    const kek = keks.get(listenerId)!;
    const sequence = sequenceOf[i];
    return {
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
      wrapping: { kekId: kek.id, kekVersion: kek.version, mechanism: 'AES-KWP', blob: blobs[i].toString('base64') },
    };
  });
  const envelopes = await keyring.signBatch(payloads);
  return envelopes.map((envelope) => ({
    packageId: envelope.payload.id,
    distributionId: envelope.payload.distributionId,
    listenerId: envelope.payload.listenerId,
    sequence: envelope.payload.sequence,
    issuedAt,
    expiresAt,
    bytes: Buffer.from(encodeEnvelope(envelope)),
  }));
}

/** Sequences, KEKs and signed packages in the caller's transaction (listener rows stay locked until it ends). */
export async function buildPackages(m: EntityManager, keyring: HubKeyring, requests: PackageRequest[], ttlSeconds: number): Promise<BuiltPackage[]> {
  if (requests.length === 0) return [];
  const counts = countByListener(requests);
  const sequences = assignSequences(requests, await allocateSequences(m, counts));
  const keks = await loadKeks(m, [...counts.keys()]);
  return signPackages(keyring, requests, keks, sequences, ttlSeconds);
}

/**
 * Writes built packages and their outbox rows in the caller's transaction,
 * in one statement; the relay is woken at commit. The parameters are shaped
 * for a hot path: ids as one comma-separated string, the signed envelopes as
 * one binary buffer cut up by offsets in SQL (a bytea array would travel as
 * hex text, twice the size, escaped element by element), and the times that
 * are the same for the whole batch as scalars.
 */
export async function storePackages(m: EntityManager, built: BuiltPackage[]): Promise<void> {
  if (built.length === 0) return;
  const offsets: number[] = [];
  const lengths: number[] = [];
  let at = 1;
  for (const b of built) {
    offsets.push(at);
    lengths.push(b.bytes.length);
    at += b.bytes.length;
  }
  // One signPackages call stamps all its packages with the same times, sent once below.
  if (!built.every((b) => b.issuedAt === built[0].issuedAt && b.expiresAt === built[0].expiresAt)) {
    throw new KeyhubError('INTERNAL', 'packages of one outbox write must come from one signing batch');
  }
  await m.query(
    `WITH u AS (SELECT * FROM unnest(string_to_array($1, ',')::uuid[], string_to_array($2, ',')::uuid[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::int[])
                 AS u(id, distribution_id, listener_id, sequence, subject, off, len)),
          p AS (INSERT INTO packages (id, distribution_id, listener_id, sequence, issued_at, expires_at)
                SELECT id, distribution_id, listener_id, sequence, $8, $9 FROM u)
     INSERT INTO outbox (subject, msg_id, payload, distribution_id)
     SELECT subject, id::text, substring($10::bytea FROM off FOR len), distribution_id FROM u`,
    [
      built.map((b) => b.packageId).join(','),
      built.map((b) => b.distributionId).join(','),
      built.map((b) => b.listenerId),
      built.map((b) => b.sequence),
      built.map((b) => subjects.toListener(b.listenerId, 'package')),
      offsets,
      lengths,
      built[0].issuedAt,
      built[0].expiresAt,
      Buffer.concat(built.map((b) => b.bytes)),
    ],
  );
  await notifyOutbox(m);
}

/** `buildPackages` then `storePackages`, for callers that update their distribution rows themselves. */
export async function issuePackages(m: EntityManager, keyring: HubKeyring, requests: PackageRequest[], ttlSeconds: number): Promise<IssuedPackage[]> {
  const built = await buildPackages(m, keyring, requests, ttlSeconds);
  await storePackages(m, built);
  return built.map((b) => ({ packageId: b.packageId, distributionId: b.distributionId, sequence: b.sequence }));
}

function asAlgorithm(value: string): KeyAlgorithm {
  if ((KEY_ALGORITHMS as readonly string[]).includes(value)) return value as KeyAlgorithm;
  throw new KeyhubError('INPUT_INVALID', `algorithm ${value} cannot be distributed`);
}
