import { createPublicKey } from 'node:crypto';
import { KeyhubError } from '@keyhub/shared';
import { ecdsaSha256Algorithm, explicit, fromDer, positiveInteger, sequence, smallInteger, time, type Asn1 } from './der';
import { extensionsToAsn1 } from './extensions';
import type { FilledExtension } from './forge-types';
import { signTbs, type CaSigner } from './signer';

export interface CertificateTemplate {
  serial: Buffer;
  /** The issuer's subject Name exactly as encoded in the issuer's certificate. */
  issuer: Asn1;
  subject: Asn1;
  notBefore: Date;
  notAfter: Date;
  /** DER SubjectPublicKeyInfo of the subject, see `canonicalSpki`. */
  subjectPublicKeyInfo: Buffer;
  extensions: FilledExtension[];
}

/**
 * Parses a public key the way TLS peers and OpenSSL will, and returns its
 * canonical DER SPKI. forge's certificate object serializes RSA keys only, so
 * the SPKI goes into the TBSCertificate as these bytes; checking them first
 * keeps garbage (or a private key) from being certified.
 */
export function canonicalSpki(spkiDer: Buffer): { spki: Buffer; keyType: string } {
  try {
    const key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
    const spki = key.export({ type: 'spki', format: 'der' });
    if (!spki.equals(spkiDer)) throw new Error('not in canonical DER');
    return { spki, keyType: key.asymmetricKeyType ?? 'unknown' };
  } catch (err) {
    throw new KeyhubError('INPUT_INVALID', 'subject public key is not a DER SubjectPublicKeyInfo', { cause: err });
  }
}

/** X.509 v3 Certificate (RFC 5280 4.1), signed ecdsa-with-SHA256 by `signer`. */
export async function buildCertificate(t: CertificateTemplate, signer: CaSigner): Promise<Buffer> {
  const tbs = sequence([
    explicit(0, smallInteger(2)), // v3
    positiveInteger(t.serial),
    ecdsaSha256Algorithm(),
    t.issuer,
    sequence([time(t.notBefore), time(t.notAfter)]),
    t.subject,
    fromDer(t.subjectPublicKeyInfo),
    extensionsToAsn1(t.extensions),
  ]);
  return signTbs(tbs, signer);
}
