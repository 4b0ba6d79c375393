import { buildCertificate, canonicalSpki } from './certificate-builder';
import { type CaIssuer, authorityKeyId, requireSigner } from './ca-issuer';
import { derToPem, randomSerial } from './der';
import { keyIdentifier } from './extensions';
import type { FilledExtension } from './forge-types';
import { nameToAsn1, nameToText, type DistinguishedName } from './names';
import { validityWindow, type CertificateProfile } from './profiles';
import type { CaSigner } from './signer';
import { insertCertificate, type Queryable } from '../../store/queries/certificates';

/** A certificate the hub CA has just issued and recorded. */
export interface IssuedCertificate {
  serial: string;
  profile: CertificateProfile;
  der: Buffer;
  pem: string;
  notBefore: Date;
  notAfter: Date;
}

export interface IssueRequest {
  profile: CertificateProfile;
  subject: DistinguishedName;
  spki: Buffer;
  days: number;
  /** The profile's extensions, given the subject's and the issuer's key identifiers and the subject key's type. */
  extensions: (subjectKeyId: Buffer, authorityKeyId: Buffer, keyType: string) => FilledExtension[];
  operatorId?: string;
  /** Who asked: goes to `ca_certificates.created_by`. */
  actor: string;
}

interface SigningIssuer {
  /** undefined for a self-signed certificate, which names itself. */
  ca?: CaIssuer;
  signer: CaSigner;
}

/**
 * Builds, signs (in the HSM) and records one certificate. The row is written
 * through `q`, so a caller holding a transaction commits it together with
 * its audit event.
 */
async function signAndRecord(q: Queryable, by: SigningIssuer, req: IssueRequest): Promise<IssuedCertificate> {
  const { spki, keyType } = canonicalSpki(req.spki);
  const subject = nameToAsn1(req.subject);
  const { notBefore, notAfter } = validityWindow(req.days, new Date(), by.ca?.notAfter);
  const serialBytes = randomSerial();
  const serial = serialBytes.toString('hex');
  const subjectKeyId = keyIdentifier(spki);
  const der = await buildCertificate(
    {
      serial: serialBytes,
      issuer: by.ca?.parts.subject ?? subject,
      subject,
      notBefore,
      notAfter,
      subjectPublicKeyInfo: spki,
      extensions: req.extensions(subjectKeyId, by.ca ? authorityKeyId(by.ca) : subjectKeyId, keyType),
    },
    by.signer,
  );
  await insertCertificate(q, {
    serial,
    profile: req.profile,
    subject: nameToText(req.subject),
    // A root names itself as its issuer, so every row points at the certificate that signed it.
    issuerSerial: by.ca?.serial ?? serial,
    operatorId: req.operatorId ?? null,
    notBefore,
    notAfter,
    der,
    createdBy: req.actor,
  });
  return { serial, profile: req.profile, der, pem: derToPem(der, 'CERTIFICATE'), notBefore, notAfter };
}

/** A certificate signed by `issuer`'s key in the token. */
export function issueUnder(q: Queryable, issuer: CaIssuer, req: IssueRequest): Promise<IssuedCertificate> {
  return signAndRecord(q, { ca: issuer, signer: requireSigner(issuer) }, req);
}

/** A self-signed certificate: only the root CA has one. */
export function issueSelfSigned(q: Queryable, signer: CaSigner, req: IssueRequest): Promise<IssuedCertificate> {
  return signAndRecord(q, { signer }, req);
}
