import { createHash, verify } from 'node:crypto';
import { KeyhubError, type Hsm, type KeyHandle } from '@keyhub/shared';
import { bitString, ecdsaRawToDer, ecdsaSha256Algorithm, sequence, toDer, type Asn1 } from './der';

/** A CA key as the builders see it: its public half, and a way to sign a SHA-256 digest with the private half. */
export interface CaSigner {
  readonly spki: Buffer;
  /** Raw r||s over a caller-computed SHA-256 digest. */
  signDigest(digest: Buffer): Promise<Buffer>;
}

/** The private key never leaves the token: only the digest goes in and r||s comes out. */
export function hsmSigner(hsm: Hsm, privateKey: KeyHandle, spki: Buffer): CaSigner {
  return { spki, signDigest: (digest) => hsm.signDigestEcdsa(privateKey, digest) };
}

/**
 * Signs a TBSCertificate or TBSCertList and returns the whole signed
 * structure (SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature }) as
 * DER. The signature is checked against the signer's public key before it is
 * returned: a token object whose label points at the wrong key pair would
 * otherwise yield certificates that fail only later, at a relying party.
 */
export async function signTbs(tbs: Asn1, signer: CaSigner): Promise<Buffer> {
  const tbsDer = toDer(tbs);
  const raw = await signer.signDigest(createHash('sha256').update(tbsDer).digest());
  const ok = verify('sha256', tbsDer, { key: signer.spki, format: 'der', type: 'spki', dsaEncoding: 'ieee-p1363' }, raw);
  if (!ok) throw new KeyhubError('INTERNAL', 'the CA key in the token did not produce a signature its public key verifies');
  return toDer(sequence([tbs, ecdsaSha256Algorithm(), bitString(ecdsaRawToDer(raw))]));
}
