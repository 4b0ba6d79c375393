import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import * as forge from 'node-forge';
import { KeyhubError } from '@keyhub/shared';
import { fromBinary, fromDer, octetString, toBinary, type Asn1 } from './der';
import type { FilledExtension } from './forge-types';

/**
 * X.509v3 extensions per profile. The values are encoded by node-forge: its
 * per-extension encoders (_fillMissingExtensionFields) are reachable only
 * through a certificate object's setExtensions, so a scratch certificate is
 * used for that alone; it never holds a key and is never signed.
 */
export function encodeExtensions(specs: object[]): FilledExtension[] {
  const scratch = forge.pki.createCertificate();
  scratch.setExtensions(specs);
  return scratch.extensions;
}

/**
 * Key identifier per RFC 7093 method 1: the leftmost 160 bits of SHA-256 of
 * the subjectPublicKey bits. Issuer and child compute it the same way, which
 * is what chain building matches on.
 */
export function keyIdentifier(spki: Buffer): Buffer {
  const parsed = fromDer(spki);
  const bits = Array.isArray(parsed.value) ? parsed.value[1] : undefined;
  if (bits === undefined || typeof bits.value !== 'string' || bits.type !== forge.asn1.Type.BITSTRING) {
    throw new KeyhubError('INPUT_INVALID', 'public key is not a SubjectPublicKeyInfo');
  }
  return createHash('sha256').update(fromBinary(bits.value).subarray(1)).digest().subarray(0, 20);
}

function identifiers(subjectKeyId: Buffer, authorityKeyId: Buffer): object[] {
  return [
    { name: 'subjectKeyIdentifier', value: octetString(subjectKeyId) },
    { name: 'authorityKeyIdentifier', keyIdentifier: toBinary(authorityKeyId) },
  ];
}

/**
 * A CA certificate may sign certificates and CRLs and nothing else. The root
 * allows one level of intermediates below it; the intermediates none
 * (pathLen 0), so a leaf can never act as a CA even if someone marks it so.
 */
export function caExtensions(subjectKeyId: Buffer, authorityKeyId: Buffer, pathLen: number): FilledExtension[] {
  return encodeExtensions([
    { name: 'basicConstraints', critical: true, cA: true, pathLenConstraint: pathLen },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true },
    ...identifiers(subjectKeyId, authorityKeyId),
  ]);
}

export interface SubjectAltNames {
  dnsNames?: string[];
  ipAddresses?: string[];
  uris?: string[];
}

const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function altNames(san: SubjectAltNames): object[] {
  const names: object[] = [];
  for (const dns of san.dnsNames ?? []) {
    if (dns.length > 253 || !DNS_NAME.test(dns)) throw new KeyhubError('INPUT_INVALID', `not a DNS name: ${JSON.stringify(dns.slice(0, 64))}`);
    names.push({ type: 2, value: dns.toLowerCase() });
  }
  for (const ip of san.ipAddresses ?? []) {
    if (isIP(ip) === 0) throw new KeyhubError('INPUT_INVALID', `not an IP address: ${JSON.stringify(ip.slice(0, 64))}`);
    names.push({ type: 7, ip });
  }
  for (const uri of san.uris ?? []) names.push({ type: 6, value: uri });
  return names;
}

/** keyEncipherment only matters for RSA key transport; an EC server key signs its ECDHE share. */
function leafKeyUsage(rsa: boolean): object {
  return { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: rsa };
}

/** serverAuth with the names clients will check; RFC 6125 wants them in the SAN, not the CN. */
export function tlsServerExtensions(subjectKeyId: Buffer, authorityKeyId: Buffer, san: SubjectAltNames, rsa: boolean, clientAuth = false): FilledExtension[] {
  const names = altNames(san);
  if (names.length === 0) throw new KeyhubError('INPUT_INVALID', 'a TLS server certificate needs at least one DNS name or IP address');
  return encodeExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    leafKeyUsage(rsa),
    // clientAuth too only for NATS cluster routes, where each server dials its peers with the same certificate.
    { name: 'extKeyUsage', serverAuth: true, ...(clientAuth ? { clientAuth: true } : {}) },
    { name: 'subjectAltName', altNames: names },
    ...identifiers(subjectKeyId, authorityKeyId),
  ]);
}

/** clientAuth only, so an operator certificate can never serve TLS; the operator id rides in a SAN URI. */
export function operatorClientExtensions(subjectKeyId: Buffer, authorityKeyId: Buffer, operatorUri: string, rsa: boolean): FilledExtension[] {
  return encodeExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    leafKeyUsage(rsa),
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'subjectAltName', altNames: altNames({ uris: [operatorUri] }) },
    ...identifiers(subjectKeyId, authorityKeyId),
  ]);
}

/** Certificates that travel with key pairs into keystores: signature keys, never CAs, no TLS purpose. */
export function keyCertificateExtensions(subjectKeyId: Buffer, authorityKeyId: Buffer): FilledExtension[] {
  return encodeExtensions([{ name: 'basicConstraints', critical: true, cA: false }, { name: 'keyUsage', critical: true, digitalSignature: true }, ...identifiers(subjectKeyId, authorityKeyId)]);
}

/** The `[3] EXPLICIT Extensions` element of a TBSCertificate. */
export function extensionsToAsn1(extensions: FilledExtension[]): Asn1 {
  return forge.pki.certificateExtensionsToAsn1(extensions);
}
