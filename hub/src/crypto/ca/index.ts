export { HubCa, operatorUri, type HubCaOptions, type HubCaEnsureOptions, type IssuedLeaf, type IssueOptions } from './hub-ca';
export { serverTlsMaterial, type ServerTlsMaterial } from './server-tls';
export { verifyClientCertificate, type VerifiedClient } from './client-certificate-check';
export { REVOCATION_REASONS, type RevocationReason } from './crl-builder';
export { derToPem } from './der';
export type { DistinguishedName } from './names';
export type { ExternalCaCertificates } from './ca-bootstrap';
export type { IssuedCertificate } from './issuance';
export { DEFAULT_CA_KEY_LABELS, DEFAULT_CA_VALIDITY, type CaKeyLabels, type CaProfile, type CaValidity, type CertificateProfile, type LeafProfile } from './profiles';
