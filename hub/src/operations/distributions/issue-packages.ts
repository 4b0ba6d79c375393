import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import type { HubKeyring } from '../../crypto/hub-keyring';
import { loadPackageChains } from '../../crypto/package-chains';
import { signPackages, type BuiltPackage, type IssuedPackage, type PackageRequest } from '../../crypto/package-signer';
import { assignSequences, countByListener } from '../../domain/sequences';
import { allocateSequences, loadKeks } from '../../store/queries/listeners';
import { insertPackagesWithOutbox } from '../../store/queries/packages';

// Not a use case: the issuing step that distribute, resend-due and apply-receipts share.
export type { BuiltPackage, IssuedPackage, PackageRequest };

/** Sequences, KEKs and signed packages in the caller's transaction (listener rows stay locked until it ends). */
export async function buildPackages(m: EntityManager, keyring: HubKeyring, requests: PackageRequest[], ttlSeconds: number): Promise<BuiltPackage[]> {
  if (requests.length === 0) return [];
  const counts = countByListener(requests);
  const sequences = assignSequences(requests, await allocateSequences(m, counts));
  const keks = await loadKeks(m, [...counts.keys()]);
  return signPackages(keyring, requests, keks, sequences, ttlSeconds, loadPackageChains(m, requests));
}

/** Writes built packages and their outbox rows in the caller's transaction; the relay is woken at commit. */
export async function storePackages(m: EntityManager, built: BuiltPackage[]): Promise<void> {
  if (built.length === 0) return;
  // One signPackages call stamps all its packages with the same times, sent once.
  if (!built.every((b) => b.issuedAt === built[0].issuedAt && b.expiresAt === built[0].expiresAt)) {
    throw new KeyhubError('INTERNAL', 'packages of one outbox write must come from one signing batch');
  }
  await insertPackagesWithOutbox(m, built, built[0].issuedAt, built[0].expiresAt);
}

/** `buildPackages` then `storePackages`, for callers that update their distribution rows themselves. */
export async function issuePackages(m: EntityManager, keyring: HubKeyring, requests: PackageRequest[], ttlSeconds: number): Promise<IssuedPackage[]> {
  const built = await buildPackages(m, keyring, requests, ttlSeconds);
  await storePackages(m, built);
  return built.map((b) => ({ packageId: b.packageId, distributionId: b.distributionId, sequence: b.sequence }));
}
