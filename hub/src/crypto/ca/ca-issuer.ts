import { X509Certificate } from 'node:crypto';
import { KeyhubError } from '@keyhub/shared';
import { issuerParts, serialOf, spkiOf, validityOf, type IssuerParts } from './certificate-parts';
import { derToPem } from './der';
import { keyIdentifier } from './extensions';
import type { CaProfile } from './profiles';
import type { CaSigner } from './signer';

/** A CA ready to issue: its certificate, and its key in the token. */
export interface CaIssuer {
  profile: CaProfile;
  /** Absent for an external root, whose key is not in this hub's token. */
  signer?: CaSigner;
  certificate: X509Certificate;
  der: Buffer;
  pem: string;
  serial: string;
  /** Text form of its subject, as stored in `ca_certificates.subject`. */
  subjectText: string;
  parts: IssuerParts;
  notAfter: Date;
}

export function makeIssuer(profile: CaProfile, der: Buffer, subjectText: string, signer?: CaSigner): CaIssuer {
  const certificate = new X509Certificate(der);
  return { profile, signer, certificate, der, pem: derToPem(der, 'CERTIFICATE'), serial: serialOf(certificate), subjectText, parts: issuerParts(der), notAfter: validityOf(certificate).notAfter };
}

/** The key identifier children of this CA carry as authorityKeyIdentifier. */
export function authorityKeyId(issuer: CaIssuer): Buffer {
  return issuer.parts.subjectKeyId ?? keyIdentifier(spkiOf(issuer.certificate));
}

/**
 * Whether a stored or supplied CA certificate may be used: it certifies the
 * key the token holds under that label, is a CA, is within its validity, and
 * is signed by its parent (by itself for a root). The database is not
 * trusted (DESIGN, Trust boundaries), so a row is only a candidate until
 * this passes.
 */
export function caCertificateProblem(cert: X509Certificate, tokenSpki: Buffer | undefined, parent: X509Certificate | undefined, now = new Date()): string | undefined {
  if (tokenSpki !== undefined && !spkiOf(cert).equals(tokenSpki)) return 'certifies another key than the one in the token';
  if (!cert.ca) return 'is not a CA certificate';
  const { notBefore, notAfter } = validityOf(cert);
  if (notBefore > now || notAfter <= now) return 'is outside its validity period';
  const signer = parent ?? cert;
  if (!cert.checkIssued(signer) || !cert.verify(signer.publicKey)) return parent ? 'is not signed by its parent CA' : 'is not self-signed';
  return undefined;
}

export function requireSigner(issuer: CaIssuer): CaSigner {
  if (issuer.signer === undefined) throw new KeyhubError('CONFIG_INVALID', `the ${issuer.profile} CA key is not in this hub's token`);
  return issuer.signer;
}
