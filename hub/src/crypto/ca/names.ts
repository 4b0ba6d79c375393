import * as forge from 'node-forge';
import { KeyhubError } from '@keyhub/shared';
import type { Asn1 } from './der';

/** The subject attributes Keyhub puts into certificates, in the order they are encoded. */
export interface DistinguishedName {
  commonName: string;
  organization?: string;
  organizationalUnit?: string;
  /** Two letters (ISO 3166); encoded as PrintableString, as RFC 5280 requires. */
  country?: string;
  /** X.520 serialNumber attribute: tells apart CAs of different hubs that share a name. */
  serialNumber?: string;
  /** RFC 4519 UID: the operator id in client certificates. */
  userId?: string;
}

interface AttributeSpec {
  key: keyof DistinguishedName;
  oid: string;
  short: string;
  /** RFC 5280 upper bounds (ub-*); longer values are refused, not truncated. */
  max: number;
  printable?: boolean;
}

const ATTRIBUTES: AttributeSpec[] = [
  { key: 'country', oid: '2.5.4.6', short: 'C', max: 2, printable: true },
  { key: 'organization', oid: '2.5.4.10', short: 'O', max: 64 },
  { key: 'organizationalUnit', oid: '2.5.4.11', short: 'OU', max: 64 },
  { key: 'serialNumber', oid: '2.5.4.5', short: 'serialNumber', max: 64, printable: true },
  { key: 'userId', oid: '0.9.2342.19200300.100.1.1', short: 'UID', max: 256 },
  { key: 'commonName', oid: '2.5.4.3', short: 'CN', max: 64 },
];

function hasControlCharacter(value: string): boolean {
  return [...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function present(dn: DistinguishedName): Array<{ spec: AttributeSpec; value: string }> {
  return ATTRIBUTES.flatMap((spec) => {
    const value = dn[spec.key];
    return value === undefined ? [] : [{ spec, value }];
  });
}

/** Refuses empty, oversized or non-printable values before anything is signed. */
export function validateName(dn: DistinguishedName): void {
  for (const { spec, value } of present(dn)) {
    const chars = [...value].length;
    if (chars === 0 || chars > spec.max || hasControlCharacter(value)) {
      throw new KeyhubError('INPUT_INVALID', `subject ${spec.short} must be 1..${spec.max} printable characters`);
    }
    if (spec.printable && !PRINTABLE.test(value)) {
      throw new KeyhubError('INPUT_INVALID', `subject ${spec.short} allows only PrintableString characters`);
    }
  }
  if (dn.country !== undefined && !/^[A-Z]{2}$/.test(dn.country)) throw new KeyhubError('INPUT_INVALID', 'subject C must be two capital letters');
}

/**
 * RDNSequence through forge's encoder. Free text is UTF8String (RFC 5280
 * prefers it); C and serialNumber stay PrintableString as X.520 defines them.
 */
export function nameToAsn1(dn: DistinguishedName): Asn1 {
  validateName(dn);
  const attributes = present(dn).map(({ spec, value }) => ({
    type: spec.oid,
    value,
    valueTagClass: (spec.printable ? forge.asn1.Type.PRINTABLESTRING : forge.asn1.Type.UTF8) as number as forge.asn1.Class,
  }));
  return forge.pki.distinguishedNameToAsn1({ attributes });
}

/** RFC 4514-style text for the `subject` column and messages, most significant RDN last. */
export function nameToText(dn: DistinguishedName): string {
  return present(dn)
    .reverse()
    .map(({ spec, value }) => `${spec.short}=${value.replace(/([,+"\\<>;=])/g, '\\$1')}`)
    .join(',');
}
