import { X509Certificate } from 'node:crypto';
import { LIMITS } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { spkiOf, validityOf } from './certificate-parts';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;
/** The largest DER certificate a package can carry (protocol LIMITS, base64). */
const MAX_DER = Math.floor((LIMITS.maxCertificateChars * 3) / 4);

function invalid(message: string): KeyhubError {
  return new KeyhubError('CERTIFICATE_CHAIN_INVALID', message);
}

/** The DER certificates of a PEM chain, in order; anything else in the text (comments, `openssl` headers) is ignored. */
export function pemCertificates(pem: string): Buffer[] {
  const ders = [...pem.matchAll(PEM_CERTIFICATE)].map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
  if (ders.length === 0) throw invalid('no PEM certificate in the chain');
  if (ders.length > LIMITS.maxChainCertificates) throw invalid(`a chain holds at most ${LIMITS.maxChainCertificates} certificates`);
  return ders;
}

export interface CheckedChain {
  ders: Buffer[];
  leaf: X509Certificate;
}

/**
 * A key pair's chain before it is stored: leaf first, the leaf certifies
 * exactly `spki` (CERTIFICATE_KEY_MISMATCH), is within its validity, and each
 * certificate is issued and signed by the next one, as far as the chain
 * goes (CERTIFICATE_CHAIN_INVALID). A last certificate that is self-signed
 * must verify under its own key. Trust in the top of the chain is the
 * relying party's to decide; the hub only refuses what cannot be a chain.
 */
export function checkChain(ders: Buffer[], spki: Buffer, now = new Date()): CheckedChain {
  const certs = ders.map((der, i) => {
    if (der.length > MAX_DER) throw invalid(`certificate ${i + 1} of the chain is larger than ${MAX_DER} bytes`);
    try {
      return new X509Certificate(der);
    } catch (err) {
      throw new KeyhubError('CERTIFICATE_CHAIN_INVALID', `certificate ${i + 1} of the chain is not an X.509 certificate`, { cause: err });
    }
  });
  const leaf = certs[0];
  assertCertifies(leaf, spki);
  const { notBefore, notAfter } = validityOf(leaf);
  if (notBefore > now || notAfter <= now) throw invalid('the leaf certificate is outside its validity period');
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!certs[i].checkIssued(certs[i + 1]) || !certs[i].verify(certs[i + 1].publicKey)) throw invalid(`certificate ${i + 1} of the chain is not signed by certificate ${i + 2}`);
  }
  const top = certs[certs.length - 1];
  if (top.checkIssued(top) && certs.length > 1 && !top.verify(top.publicKey)) throw invalid('the self-signed top of the chain does not verify under its own key');
  return { ders, leaf };
}

/** A stored chain is used only while its leaf certifies the version's public key (CERTIFICATE_KEY_MISMATCH). */
export function assertCertifies(leaf: X509Certificate | Buffer, spki: Buffer): void {
  const cert = Buffer.isBuffer(leaf) ? new X509Certificate(leaf) : leaf;
  if (!spkiOf(cert).equals(spki)) throw new KeyhubError('CERTIFICATE_KEY_MISMATCH', "the chain's first certificate certifies another public key than the key version's");
}
