import { createHash } from 'node:crypto';
import { canonicalBytes } from './canonical';

/**
 * Fingerprints are SHA-256, shown as 16 groups of 4 hex digits so that two
 * people can read them to each other. Comparison ignores case and separators.
 */
export function formatFingerprint(digest: Buffer): string {
  return (digest.toString('hex').match(/.{4}/g) ?? []).join('-');
}

export function normalizeFingerprint(text: string): string {
  return text.toLowerCase().replace(/[^0-9a-f]/g, '');
}

export function fingerprintsEqual(a: string, b: string): boolean {
  const x = normalizeFingerprint(a);
  return x.length === 64 && x === normalizeFingerprint(b);
}

/** Fingerprint of one public key (DER SubjectPublicKeyInfo). */
export function publicKeyFingerprint(spkiDer: Buffer): string {
  return formatFingerprint(createHash('sha256').update(spkiDer).digest());
}

/**
 * Fingerprint of an enrollment: binds the listener id to its public keys, so
 * approving it approves exactly this identity key, this transport key (what
 * the root KEK is wrapped to) and this NATS user key (who the site's NATS
 * credentials are issued to). A key swapped in the hub's database between
 * enrollment and approval changes the fingerprint the hub recomputes.
 */
export function enrollmentFingerprint(listenerId: string, identityKeyB64: string, transportKeyB64: string, natsUserKey?: string): string {
  const bound = natsUserKey === undefined ? {} : { natsUserKey };
  const digest = createHash('sha256')
    .update(canonicalBytes({ listenerId, identityKey: identityKeyB64, transportKey: transportKeyB64, ...bound }))
    .digest();
  return formatFingerprint(digest);
}
