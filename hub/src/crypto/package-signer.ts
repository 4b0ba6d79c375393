import { randomUUID } from 'node:crypto';
import { encodeEnvelope, KEY_ALGORITHM_INFO, MESSAGE_TYPES, type KeyPackage, type KeyUsage } from '@keyhub/protocol';
import { KeyhubError, type WrappedAesKey } from '@keyhub/shared';
import { distributableAlgorithm } from '../domain/key-spec';
import { assertKindAllowed, packagePolicy } from '../domain/target-policy';
import type { DistributionEntity, KeyEntity, KeyVersionEntity } from '../store/entities';
import { targetKekKey, type StoredKek } from '../store/queries/listeners';
import type { HubKeyring } from './hub-keyring';
import { packageChains, type PackageChains } from './package-chains';
import { kekMacData, keyVersionMacData, targetKekMacData } from './row-mac';

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
  /** Key pairs' certificate chains (package-chains.ts), awaited with the sequences; absent: none. */
  chains?: PackageChains,
): Promise<BuiltPackage[]> {
  if (requests.length === 0) return [];
  const { kekBlobs, keyBlobs, pairs, kekRows, keyRows } = translation(requests, keks);
  let blobs: Buffer[];
  try {
    blobs = await keyring.translate(kekBlobs, keyBlobs, pairs);
  } catch (err) {
    throw nameTheRow(err, kekRows, keyRows);
  }
  const sequenceOf = await sequences;
  const chainOf = await packageChains(requests, chains);
  const issuedAt = new Date();
  const expiresAt = new Date(issuedAt.getTime() + ttlSeconds * 1000);
  const payloads: KeyPackage[] = requests.map((r, i) =>
    payload(r, kekFor(keks, r.distribution.listenerId, r.distribution.target), sequenceOf[i], blobs[i], issuedAt, expiresAt, chainOf.get(r.version.id)),
  );
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

/** ROW_MAC_INVALID from the HSM names a blob by index; the operator needs the row. */
function nameTheRow(err: unknown, kekRows: string[], keyRows: string[]): unknown {
  if (!KeyhubError.is(err, 'ROW_MAC_INVALID')) return err;
  const { side, index } = (err.details ?? {}) as { side?: string; index?: number };
  const row = side === 'kek' ? `root KEK ${kekRows[index ?? -1]}` : `key version ${keyRows[index ?? -1]}`;
  return new KeyhubError('ROW_MAC_INVALID', `${row} does not match its row MAC (moved, altered or never bound); nothing was unwrapped or issued`, {
    cause: err,
    details: { row: side === 'kek' ? 'keks' : 'key_versions', id: (side === 'kek' ? kekRows : keyRows)[index ?? -1] ?? 'unknown' },
  });
}

/** Each distinct KEK and key version once (with its row MAC), and per request the pair (KEK index, key index) that `translate` re-wraps. */
function translation(requests: PackageRequest[], keks: Map<string, StoredKek>): { kekBlobs: WrappedAesKey[]; keyBlobs: WrappedAesKey[]; pairs: Uint32Array; kekRows: string[]; keyRows: string[] } {
  const kekIndex = new Map<string, number>();
  const keyIndex = new Map<string, number>();
  const kekBlobs: WrappedAesKey[] = [];
  const keyBlobs: WrappedAesKey[] = [];
  const pairs = new Uint32Array(requests.length * 2);
  const kekRows: string[] = [];
  const keyRows: string[] = [];
  requests.forEach((r, i) => {
    assertDeliverable(keks, r);
    const kek = kekFor(keks, r.distribution.listenerId, r.distribution.target);
    let k = kekIndex.get(kek.id);
    if (k === undefined) {
      const facts = { id: kek.id, listenerId: kek.listener_id, version: kek.version, kcv: kek.kcv, wrapped: kek.wrapped };
      const data = kek.target === undefined ? kekMacData(facts) : targetKekMacData({ ...facts, target: kek.target });
      k = kekBlobs.push({ blob: kek.wrapped, lengthBytes: 32, ...(kek.mac ? { mac: { data, tag: kek.mac } } : {}) }) - 1;
      kekRows.push(kek.id);
      kekIndex.set(kek.id, k);
    }
    let v = keyIndex.get(r.version.id);
    if (v === undefined) {
      const data = keyVersionMacData({ key: r.key, version: r.version });
      // The stored algorithm (row-MAC bound) says which master key holds the blob and what it unwraps as.
      const keyType = KEY_ALGORITHM_INFO[distributableAlgorithm(r.key.algorithm)].keyType;
      v = keyBlobs.push({ blob: r.version.wrapped, lengthBytes: r.version.length, ...(keyType !== 'aes' ? { keyType } : {}), ...(r.version.mac ? { mac: { data, tag: r.version.mac } } : {}) }) - 1;
      keyRows.push(r.version.id);
      keyIndex.set(r.version.id, v);
    }
    pairs[2 * i] = k;
    pairs[2 * i + 1] = v;
  });
  return { kekBlobs, keyBlobs, pairs, kekRows, keyRows };
}

/**
 * Defence in depth for targets as configuration (issue 12), checked again
 * where packages are built whatever the API checked: the target must be one
 * the site may receive on (declared at enrollment or added by an approved
 * update: TARGET_NOT_APPROVED), and of a kind the key's policy allows
 * (TARGET_KIND_NOT_ALLOWED). The policy read here is the one the key
 * version's row MAC binds (crypto/row-mac.ts), checked in the HSM before any
 * unwrap: a policy widened in the database fails that check.
 */
function assertDeliverable(keks: Map<string, StoredKek>, r: PackageRequest): void {
  const { listenerId, target } = r.distribution;
  const approved = keks.get(listenerId)?.targets;
  if (!approved) return;
  const t = approved.find((x) => x.name === target);
  if (!t) throw new KeyhubError('TARGET_NOT_APPROVED', `target ${target} of ${listenerId} is not an approved target of the site: nothing is wrapped for it`);
  assertKindAllowed(r.key, { listenerId, target, kind: t.kind });
}

/**
 * The KEK a package for (listener, target) is wrapped under: the target's
 * own KEK when it has asked for one (issue 12; refused until that KEK is
 * active, as the root KEK is not in the target's token), else the site's
 * root KEK.
 */
function kekFor(keks: Map<string, StoredKek>, listenerId: string, target: string): StoredKek {
  const own = keks.get(targetKekKey(listenerId, target));
  if (own) {
    if (own.targetState !== 'active')
      throw new KeyhubError('TARGET_KEK_NOT_ACTIVE', `target ${target} of ${listenerId} has its own KEK, ${own.targetState}: nothing is wrapped for it until it is active`);
    return own;
  }
  return keks.get(listenerId)!;
}

function payload(r: PackageRequest, kek: StoredKek, sequence: number, blob: Buffer, issuedAt: Date, expiresAt: Date, certificateChain?: string[]): KeyPackage {
  return {
    type: MESSAGE_TYPES.keyPackage,
    id: randomUUID(),
    listenerId: r.distribution.listenerId,
    target: r.distribution.target,
    distributionId: r.distribution.id,
    sequence,
    issuedAt: issuedAt.toISOString(),
    expiresAt: expiresAt.toISOString(),
    key: {
      id: r.key.id,
      name: r.key.name,
      version: r.version.version,
      algorithm: distributableAlgorithm(r.key.algorithm),
      length: r.version.length,
      usages: r.key.usages as KeyUsage[],
      exportable: r.key.exportable,
      kcv: r.version.kcv,
      ...(r.version.publicKey ? { publicKey: r.version.publicKey.toString('base64') } : {}),
      ...(certificateChain ? { certificateChain } : {}),
      ...packagePolicy(r.key),
    },
    wrapping: { kekId: kek.id, kekVersion: kek.version, mechanism: 'AES-KWP', blob: blob.toString('base64') },
  };
}
