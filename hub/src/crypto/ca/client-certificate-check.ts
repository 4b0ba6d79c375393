import { X509Certificate } from 'node:crypto';
import { KeyhubError } from '@keyhub/shared';
import { CA_ERRORS } from './ca-errors';
import { serialOf, validityOf } from './certificate-parts';
import { operatorUri, type HubCa } from './hub-ca';
import { findCertificateWithOperator } from '../../store/queries/certificates';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface VerifiedClient {
  operatorId: string;
  serial: string;
  notAfter: Date;
}

function invalid(why: string): KeyhubError {
  return new KeyhubError(CA_ERRORS.certificateInvalid, `client certificate refused: ${why}`);
}

/**
 * The mTLS check for the API: the presented certificate (DER, as
 * `socket.getPeerCertificate().raw` gives it) must be signed by our TLS
 * issuing CA, which chains to our root, be within its validity, be the very
 * certificate the hub recorded as an operator client certificate (same DER),
 * not be revoked, and name in its SAN the operator the record names. Each
 * refusal says why without repeating the certificate.
 */
export async function verifyClientCertificate(ca: HubCa, peerCertDer: Buffer): Promise<VerifiedClient> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(peerCertDer);
  } catch {
    throw invalid('not an X.509 certificate');
  }
  const issuer = ca.issuers['tls-issuing'].certificate;
  const root = ca.issuers.root.certificate;
  if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) throw invalid('not issued by this hub');
  if (!issuer.checkIssued(root) || !issuer.verify(root.publicKey)) throw invalid('the TLS issuing CA does not chain to the root');
  const now = new Date();
  const { notBefore, notAfter } = validityOf(cert);
  if (notBefore > now || notAfter <= now) throw invalid('outside its validity period');
  if (!(cert.keyUsage ?? []).includes(CLIENT_AUTH)) throw invalid('not for client authentication');

  const serial = serialOf(cert);
  const row = await findCertificateWithOperator(ca.store, serial);
  if (row === undefined || !row.der.equals(cert.raw)) throw invalid('not recorded by this hub');
  if (row.profile !== 'operator-client' || row.operatorId === null) throw invalid('not an operator certificate');
  if (row.revokedAt !== null) throw new KeyhubError(CA_ERRORS.certificateRevoked, `client certificate ${serial} has been revoked`);
  if (row.notAfter <= now) throw invalid('outside its validity period');
  const uris = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  if (!uris.includes(operatorUri(row.operatorId))) throw invalid('its operator does not match the record');
  if (row.operatorState !== 'active') throw new KeyhubError(CA_ERRORS.operatorRevoked, `operator ${row.operatorId} is revoked`);
  return { operatorId: row.operatorId, serial, notAfter };
}
