import { X509Certificate } from 'node:crypto';
import * as forge from 'node-forge';
import { fromBinary, fromDer, type Asn1 } from './der';

const SUBJECT_KEY_IDENTIFIER = '2.5.29.14';

/** What an issuer contributes to the certificates and CRLs it signs, read from its own certificate. */
export interface IssuerParts {
  /** Its subject Name as encoded in its certificate: children must repeat it byte for byte as their issuer. */
  subject: Asn1;
  /** Its subjectKeyIdentifier, which children carry as authorityKeyIdentifier. */
  subjectKeyId?: Buffer;
}

function children(node: Asn1 | undefined): Asn1[] {
  return node !== undefined && Array.isArray(node.value) ? node.value : [];
}

/** Reads the issuer parts of a DER certificate; an external CA's certificate works as well as ours. */
export function issuerParts(der: Buffer): IssuerParts {
  const tbs = children(fromDer(der))[0];
  const fields = children(tbs);
  // The version is an optional [0] in front; everything else has a fixed position after it.
  const first = fields[0];
  const offset = first !== undefined && first.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && first.type === 0 ? 1 : 0;
  const subject = fields[offset + 4];
  if (subject === undefined) throw new Error('certificate has no subject');
  const extensions = fields.find((f) => f.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && f.type === 3);
  let subjectKeyId: Buffer | undefined;
  for (const ext of children(children(extensions)[0])) {
    const [id, ...rest] = children(ext);
    if (id === undefined || typeof id.value !== 'string' || forge.asn1.derToOid(id.value) !== SUBJECT_KEY_IDENTIFIER) continue;
    const extnValue = rest[rest.length - 1];
    if (extnValue !== undefined && typeof extnValue.value === 'string') {
      const inner = fromDer(fromBinary(extnValue.value));
      if (typeof inner.value === 'string') subjectKeyId = fromBinary(inner.value);
    }
  }
  return { subject, subjectKeyId };
}

/** Serial numbers are kept as lowercase hex without leading zero octets, the form `ca_certificates.serial` holds. */
export function normalizeSerial(serial: string): string {
  const hex = serial.replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex)) return '';
  const trimmed = hex.replace(/^(00)+(?=[0-9a-f]{2})/, '');
  return trimmed.length % 2 === 1 ? `0${trimmed}` : trimmed;
}

export function serialOf(cert: X509Certificate): string {
  return normalizeSerial(cert.serialNumber);
}

export function validityOf(cert: X509Certificate): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

export function spkiOf(cert: X509Certificate): Buffer {
  return cert.publicKey.export({ type: 'spki', format: 'der' });
}
