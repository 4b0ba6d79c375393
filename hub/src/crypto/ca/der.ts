import { randomBytes } from 'node:crypto';
import * as forge from 'node-forge';
import './forge-types';

/**
 * Small DER pieces shared by certificates and CRLs. node-forge works on
 * "binary strings" (one char per byte); everything else here uses Buffers,
 * so the conversion happens only in this folder.
 */
const { asn1 } = forge;
export type Asn1 = forge.asn1.Asn1;

/** ecdsa-with-SHA256 (RFC 5758): the only algorithm our P-256 CA keys sign with. */
export const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

export function toBinary(buf: Buffer): string {
  return buf.toString('binary');
}

export function fromBinary(bytes: string): Buffer {
  return Buffer.from(bytes, 'binary');
}

export function toDer(node: Asn1): Buffer {
  return fromBinary(asn1.toDer(node).getBytes());
}

/** Strict parse: trailing bytes or indefinite lengths are refused, not skipped. */
export function fromDer(der: Buffer): Asn1 {
  return asn1.fromDer(toBinary(der), { strict: true, parseAllBytes: true, decodeBitStrings: false });
}

export function sequence(children: Asn1[]): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, children);
}

export function oid(dotted: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(dotted).getBytes());
}

export function octetString(bytes: Buffer): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, toBinary(bytes));
}

export function bitString(bytes: Buffer): Asn1 {
  // The leading 0 says no unused bits: signatures are whole bytes.
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + toBinary(bytes));
}

export function explicit(tag: number, child: Asn1): Asn1 {
  return asn1.create(asn1.Class.CONTEXT_SPECIFIC, tag, true, [child]);
}

/**
 * A non-negative INTEGER from big-endian magnitude bytes, minimally encoded:
 * DER forbids leading zero octets, and OpenSSL 3 refuses them, while a set
 * top bit needs one 0x00 so the value does not read as negative.
 */
export function positiveInteger(magnitude: Buffer): Asn1 {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  let body = magnitude.subarray(start);
  if (body.length === 0) body = Buffer.alloc(1);
  if (body[0] & 0x80) body = Buffer.concat([Buffer.alloc(1), body]);
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, toBinary(body));
}

export function smallInteger(value: number): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(value).getBytes());
}

/** AlgorithmIdentifier for ecdsa-with-SHA256; RFC 5758 says the parameters are absent, not NULL. */
export function ecdsaSha256Algorithm(): Asn1 {
  return sequence([oid(ECDSA_WITH_SHA256)]);
}

/**
 * RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050, both in
 * whole seconds (fractions are not allowed).
 */
export function time(date: Date): Asn1 {
  const whole = new Date(Math.floor(date.getTime() / 1000) * 1000);
  return whole.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(whole))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(whole));
}

/**
 * PKCS#11 CKM_ECDSA returns raw r||s; X.509 and CRLs carry the DER
 * ECDSA-Sig-Value (SEQUENCE of two INTEGERs).
 */
export function ecdsaRawToDer(raw: Buffer): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new Error(`ECDSA signature of ${raw.length} bytes is not r||s`);
  const half = raw.length / 2;
  return toDer(sequence([positiveInteger(raw.subarray(0, half)), positiveInteger(raw.subarray(half))]));
}

/**
 * 16 random bytes, positive: 127 bits of entropy beyond the CA/Browser
 * Forum's 64, and never a leading zero octet (which DER would have to drop).
 */
export function randomSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = serial[0] & 0x7f || 0x01;
  return serial;
}

export function derToPem(der: Buffer, label: 'CERTIFICATE' | 'X509 CRL'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
