import { X509Certificate } from 'node:crypto';
import { KeyhubError } from '@keyhub/shared';
import { certificateChains } from '../store/queries/key-certificates';
import type { Queryable } from '../store/queries/queryable';
import type { PackageRequest } from './package-signer';

/** Certificate chains by key version id, DER leaf first, as `certificate-chains` reads them. */
export type PackageChains = Promise<Map<string, Buffer[]>> | Map<string, Buffer[]>;

const NONE: Map<string, Buffer[]> = new Map();

/**
 * The chains of the key pair versions among `requests`, in one statement per
 * call (a chunk of packages); no statement at all when the chunk holds no
 * key pair, which is the bulk AES path.
 */
export function loadPackageChains(q: Queryable, requests: readonly PackageRequest[]): PackageChains {
  const ids = [...new Set(requests.filter((r) => r.version.publicKey).map((r) => r.version.id))];
  if (ids.length === 0) return NONE;
  const p = certificateChains(q, ids);
  // Awaited only after the HSM work; a failure meanwhile must not surface as an unhandled rejection.
  p.catch(() => undefined);
  return p;
}

/**
 * Each chain as the package carries it (base64 DER), once per version. Used
 * only after `translate` checked every version's row MAC, which binds its
 * public key: a chain whose leaf certifies another key (a row moved in the
 * database) stops the batch (CERTIFICATE_KEY_MISMATCH), as a bad row MAC does.
 */
export async function packageChains(requests: readonly PackageRequest[], chains: PackageChains | undefined): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (chains === undefined) return out;
  const byVersion = await chains;
  if (byVersion.size === 0) return out;
  for (const r of requests) {
    const chain = byVersion.get(r.version.id);
    if (!chain || out.has(r.version.id) || !r.version.publicKey) continue;
    const leafKey = new X509Certificate(chain[0]).publicKey.export({ type: 'spki', format: 'der' });
    if (!leafKey.equals(r.version.publicKey)) {
      throw new KeyhubError('CERTIFICATE_KEY_MISMATCH', `the stored certificate chain of key version ${r.version.id} certifies another public key: nothing was issued`, {
        details: { row: 'key_version_certificates', id: r.version.id },
      });
    }
    out.set(
      r.version.id,
      chain.map((der) => der.toString('base64')),
    );
  }
  return out;
}
