import * as forge from 'node-forge';
import { bitString, ecdsaRawToDer, ecdsaSha256Algorithm, fromDer, oid, sequence, smallInteger, toDer } from './der';
import { nameToAsn1, type DistinguishedName } from './names';

/** sha256WithRSAEncryption (RFC 4055): its parameters are NULL, unlike ECDSA's. */
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';

export interface SignedCsr {
  der: Buffer;
  pem: string;
  signatureAlgorithm: 'sha256WithRSAEncryption' | 'ecdsa-with-SHA256';
}

/**
 * A PKCS#10 CertificationRequest (RFC 2986) for `spki`, no attributes,
 * signed by `sign`, which gets the DER CertificationRequestInfo and returns
 * what the key's mechanism gives: RSA PKCS#1 v1.5 over SHA-256, or ECDSA
 * over SHA-256 as raw r||s. Built with forge's ASN.1, as certificates are.
 */
export async function buildCsr(subject: DistinguishedName, spki: Buffer, keyType: 'rsa' | 'ec', sign: (info: Buffer) => Promise<Buffer>): Promise<SignedCsr> {
  const info = sequence([
    smallInteger(0),
    nameToAsn1(subject),
    fromDer(spki),
    // attributes [0] IMPLICIT SET OF Attribute: present and empty.
    forge.asn1.create(forge.asn1.Class.CONTEXT_SPECIFIC, 0, true, []),
  ]);
  const infoDer = toDer(info);
  const raw = await sign(infoDer);
  const algorithm = keyType === 'rsa' ? sequence([oid(SHA256_WITH_RSA), forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.NULL, false, '')]) : ecdsaSha256Algorithm();
  const signature = keyType === 'rsa' ? raw : ecdsaRawToDer(raw);
  const der = toDer(sequence([info, algorithm, bitString(signature)]));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return {
    der,
    pem: `-----BEGIN CERTIFICATE REQUEST-----\n${lines.join('\n')}\n-----END CERTIFICATE REQUEST-----\n`,
    signatureAlgorithm: keyType === 'rsa' ? 'sha256WithRSAEncryption' : 'ecdsa-with-SHA256',
  };
}
