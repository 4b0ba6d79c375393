import * as forge from 'node-forge';
import { ecdsaSha256Algorithm, explicit, positiveInteger, sequence, smallInteger, time, toBinary, type Asn1 } from './der';
import { encodeExtensions, extensionsToAsn1 } from './extensions';
import { signTbs, type CaSigner } from './signer';

/** RFC 5280 5.3.1 CRLReason names; `certificateHold` is left out on purpose: a revocation here is final. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function isRevocationReason(value: string): value is RevocationReason {
  return Object.prototype.hasOwnProperty.call(REVOCATION_REASONS, value);
}

export interface RevokedEntry {
  /** Lowercase hex, as stored. */
  serial: string;
  revokedAt: Date;
  reason: string | null;
}

export interface CrlTemplate {
  /** The issuing CA's subject Name as encoded in its certificate. */
  issuer: Asn1;
  authorityKeyId?: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Must grow with every CRL of this issuer (RFC 5280 5.2.3). */
  crlNumber: bigint;
  revoked: RevokedEntry[];
}

function bigintBytes(n: bigint): Buffer {
  const hex = n.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}

/** forge encodes Extensions wrapped in the certificate's [3]; CRLs use the same SEQUENCE OF Extension. */
function extensionList(specs: object[]): Asn1 {
  const wrapped = extensionsToAsn1(encodeExtensions(specs));
  return (wrapped.value as Asn1[])[0];
}

function entry(e: RevokedEntry): Asn1 {
  const fields = [positiveInteger(Buffer.from(e.serial, 'hex')), time(e.revokedAt)];
  // RFC 5280 5.3.1: the reason code is left out rather than sent as unspecified.
  if (e.reason !== null && isRevocationReason(e.reason) && e.reason !== 'unspecified') {
    const code = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.ENUMERATED, false, String.fromCharCode(REVOCATION_REASONS[e.reason]));
    fields.push(extensionList([{ id: '2.5.29.21', value: code }]));
  }
  return sequence(fields);
}

/** X.509 v2 CRL (RFC 5280 5.1), signed ecdsa-with-SHA256 by the issuing CA's key. */
export async function buildCrl(t: CrlTemplate, signer: CaSigner): Promise<Buffer> {
  const extensions: object[] = [{ id: '2.5.29.20', value: positiveInteger(bigintBytes(t.crlNumber)) }];
  if (t.authorityKeyId !== undefined) extensions.unshift({ name: 'authorityKeyIdentifier', keyIdentifier: toBinary(t.authorityKeyId) });
  const fields = [smallInteger(1), ecdsaSha256Algorithm(), t.issuer, time(t.thisUpdate), time(t.nextUpdate)];
  // An empty list is left out altogether, as RFC 5280 5.1.2.6 requires.
  if (t.revoked.length > 0) fields.push(sequence(t.revoked.map(entry)));
  fields.push(explicit(0, extensionList(extensions)));
  return signTbs(sequence(fields), signer);
}
