import { X509Certificate } from 'node:crypto';
import { isKeyPair, type api, type KeyAlgorithm } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { derToPem } from '../../crypto/ca';
import type { HubKeyring } from '../../crypto/hub-keyring';
import { keyVersionMacData } from '../../crypto/row-mac';
import { certifiableVersion, type CertifiableVersion, type VersionCertificateRow } from '../../store/queries/key-certificates';
import type { Queryable } from '../../store/queries/queryable';

// Not a use case: what issuing, importing, showing a key pair version's certificate and its CSR share.

/** States whose key must never be vouched for again (NIST SP 800-57: compromised, destroyed). */
const UNCERTIFIABLE = new Set(['compromised', 'destroyed']);

/**
 * The version (`version` absent: the key's current one), refused unless it
 * is a key pair's (KEY_NOT_A_PAIR) in a state that may still be certified
 * (KEY_VERSION_NOT_CERTIFIABLE).
 */
export async function loadCertifiable(q: Queryable, name: string, version: number | undefined, lock: boolean): Promise<CertifiableVersion> {
  const row = await certifiableVersion(q, name, version ?? null, lock);
  if (row === 'no-key') throw new KeyhubError('KEY_NOT_FOUND', `no key named "${name}"`);
  if (row === 'no-version') throw new KeyhubError('KEY_NOT_FOUND', `key "${name}" has no version ${version ?? '(current)'}`);
  if (!isKeyPair(row.key.algorithm as KeyAlgorithm) || row.version.publicKey === null) {
    throw new KeyhubError('KEY_NOT_A_PAIR', `key ${name} is ${row.key.algorithm}, not a key pair: it has no public key to certify`);
  }
  if (UNCERTIFIABLE.has(row.version.state)) throw new KeyhubError('KEY_VERSION_NOT_CERTIFIABLE', `version ${row.version.version} of ${name} is ${row.version.state}`);
  return row;
}

/**
 * The database is not trusted: the public key to certify, or to compare a
 * chain with, is the one the row MAC binds, checked in the HSM first.
 */
export async function verifiedPublicKey(keyring: HubKeyring, row: CertifiableVersion): Promise<Buffer> {
  const { key, version } = row;
  if (!version.mac || !(await keyring.verifyRow(keyVersionMacData({ key, version }), version.mac))) {
    throw new KeyhubError('ROW_MAC_INVALID', `key version ${version.id} of ${key.name} does not match its row MAC: its public key is not vouched for`, {
      details: { row: 'key_versions', id: version.id },
    });
  }
  return version.publicKey!;
}

/** X509Certificate's multi-line names as one RFC 4514-like line. */
function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

export function certificateView(row: CertifiableVersion, stored: VersionCertificateRow, created: boolean): api.KeyCertificateView {
  const leaf = new X509Certificate(stored.chain[0]);
  return {
    key: row.key.name,
    version: row.version.version,
    source: stored.source,
    serial: stored.leafSerial,
    subject: oneLine(leaf.subject),
    issuer: oneLine(leaf.issuer),
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    certificates: stored.chain.length,
    chainPem: stored.chain.map((der) => derToPem(der, 'CERTIFICATE')).join(''),
    created,
  };
}
