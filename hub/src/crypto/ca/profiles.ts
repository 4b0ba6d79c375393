import { KeyhubError } from '@keyhub/shared';

/** The hub's three CA keys, each issuing for one purpose only. */
export type CaProfile = 'root' | 'tls-issuing' | 'key-issuing';
/** End-entity certificates; the names are what `ca_certificates.profile` holds. */
export type LeafProfile = 'tls-server' | 'operator-client' | 'key';
export type CertificateProfile = CaProfile | LeafProfile;

export const CA_PROFILES: readonly CaProfile[] = ['root', 'tls-issuing', 'key-issuing'];

/** Which CA issues each leaf profile: TLS (server and operator mTLS) and keystore chains never share an issuer. */
export const LEAF_ISSUER: Readonly<Record<LeafProfile, CaProfile>> = {
  'tls-server': 'tls-issuing',
  'operator-client': 'tls-issuing',
  key: 'key-issuing',
};

/** Token labels of the CA key pairs; different from the hub's own key labels, and configurable. */
export interface CaKeyLabels {
  root: string;
  tlsIssuing: string;
  keyIssuing: string;
}

export const DEFAULT_CA_KEY_LABELS: Readonly<CaKeyLabels> = {
  root: 'keyhub-ca-root',
  tlsIssuing: 'keyhub-ca-tls',
  keyIssuing: 'keyhub-ca-keys',
};

export function labelFor(labels: CaKeyLabels, profile: CaProfile): string {
  return profile === 'root' ? labels.root : profile === 'tls-issuing' ? labels.tlsIssuing : labels.keyIssuing;
}

/** Validity in days per profile; a call may ask for less or more, but never past its issuer's end. */
export interface CaValidity {
  rootDays: number;
  intermediateDays: number;
  tlsServerDays: number;
  operatorClientDays: number;
  keyDays: number;
  /** How long a CRL stays current (its nextUpdate); relying parties refetch before then. */
  crlDays: number;
}

export const DEFAULT_CA_VALIDITY: Readonly<CaValidity> = {
  rootDays: 3650,
  intermediateDays: 1825,
  tlsServerDays: 90,
  operatorClientDays: 90,
  keyDays: 365,
  crlDays: 7,
};

export function defaultDays(validity: CaValidity, profile: CertificateProfile): number {
  switch (profile) {
    case 'root':
      return validity.rootDays;
    case 'tls-issuing':
    case 'key-issuing':
      return validity.intermediateDays;
    case 'tls-server':
      return validity.tlsServerDays;
    case 'operator-client':
      return validity.operatorClientDays;
    case 'key':
      return validity.keyDays;
  }
}

/** Up to 30 years: anything longer is a typo, not a policy. */
const MAX_DAYS = 30 * 366;

export function checkDays(days: number): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) throw new KeyhubError('INPUT_INVALID', `validity must be a whole number of days between 1 and ${MAX_DAYS}`);
  return days;
}

/**
 * Certificates start a few minutes in the past: a relying party whose clock
 * runs slightly behind the hub's would otherwise refuse a fresh certificate.
 */
export const BACKDATE_MS = 5 * 60_000;

const DAY_MS = 86_400_000;

/** notBefore/notAfter for a new certificate, cut back to the issuer's notAfter when it would outlive it. */
export function validityWindow(days: number, now: Date, issuerNotAfter?: Date): { notBefore: Date; notAfter: Date } {
  // Whole seconds: that is all a certificate can say, and the stored row must say the same.
  const start = Math.floor(now.getTime() / 1000) * 1000;
  const notBefore = new Date(start - BACKDATE_MS);
  let notAfter = new Date(start + checkDays(days) * DAY_MS);
  if (issuerNotAfter !== undefined && notAfter > issuerNotAfter) notAfter = issuerNotAfter;
  return { notBefore, notAfter };
}
