import { createHash, X509Certificate } from 'node:crypto';
import { KeyhubError, type Hsm } from '@keyhub/shared';
import type { CaKeyPair, CaKeys } from './ca-keys';
import { caCertificateProblem, makeIssuer, type CaIssuer } from './ca-issuer';
import { serialOf, spkiOf } from './certificate-parts';
import { caExtensions } from './extensions';
import { issueSelfSigned, issueUnder, type IssuedCertificate, type IssueRequest } from './issuance';
import { nameToText, type DistinguishedName } from './names';
import { CA_PROFILES, type CaProfile, type CaValidity } from './profiles';
import { hsmSigner } from './signer';
import { findCurrentCertificates, findRevokedCertificates, type Queryable } from '../../store/queries/certificates';

export type CaIssuers = Record<CaProfile, CaIssuer>;

const CA_COMMON_NAMES: Record<CaProfile, string> = {
  root: 'Keyhub Root CA',
  'tls-issuing': 'Keyhub TLS Issuing CA',
  'key-issuing': 'Keyhub Key Issuing CA',
};

/**
 * The CA's subject. Every hub's CAs would otherwise share one name, and a
 * relying party that trusts two hubs would mix up their chains (OpenSSL looks
 * issuers up by name), so the X.520 serialNumber attribute carries the start
 * of the key's SHA-256 fingerprint.
 */
function caSubject(profile: CaProfile, spki: Buffer, organization: string): DistinguishedName {
  return { organization, serialNumber: createHash('sha256').update(spki).digest('hex').slice(0, 16), commonName: CA_COMMON_NAMES[profile] };
}

function parentOf(profile: CaProfile): CaProfile | undefined {
  return profile === 'root' ? undefined : 'root';
}

/** The newest stored certificate of `profile` that passes `caCertificateProblem` for the token's key. */
async function storedIssuer(hsm: Hsm, q: Queryable, profile: CaProfile, pair: CaKeyPair, parent: CaIssuer | undefined): Promise<CaIssuer | undefined> {
  for (const row of await findCurrentCertificates(q, profile)) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(row.der);
    } catch {
      continue;
    }
    if (serialOf(cert) !== row.serial || (parent !== undefined && row.issuerSerial !== parent.serial)) continue;
    if (caCertificateProblem(cert, pair.spki, parent?.certificate) !== undefined) continue;
    return makeIssuer(profile, row.der, row.subject, hsmSigner(hsm, pair.privateKey, pair.spki));
  }
  return undefined;
}

/**
 * A CA key whose certificate was revoked is never certified again: the
 * revocation may mean the key is compromised, and a new certificate would
 * quietly undo it. The way out is a new key under a new label.
 */
async function refuseRevokedKey(q: Queryable, profile: CaProfile, pair: CaKeyPair): Promise<void> {
  for (const row of await findRevokedCertificates(q, profile)) {
    if (spkiOf(new X509Certificate(row.der)).equals(pair.spki)) {
      throw new KeyhubError('CONFIG_INVALID', `the ${profile} CA key "${pair.label}" has a revoked certificate (${row.serial}): configure a new key label for it`);
    }
  }
}

export interface CaSettings {
  organization: string;
  validity: CaValidity;
}

/**
 * The CA hierarchy as the token and the database hold it. With `create`, a CA
 * whose key has no usable certificate gets a new one (the root self-signed,
 * the intermediates under the root, pathLen 0); an intermediate whose
 * certificate names an older root is re-certified under the current one.
 * Without it, anything missing is NOT_INITIALIZED.
 */
export async function resolveIssuers(hsm: Hsm, q: Queryable, keys: CaKeys, settings: CaSettings, create?: { actor: string }): Promise<{ issuers: CaIssuers; issued: IssuedCertificate[] }> {
  const issuers: Partial<CaIssuers> = {};
  const issued: IssuedCertificate[] = [];
  for (const profile of CA_PROFILES) {
    const pair = keys[profile];
    const parentProfile = parentOf(profile);
    const parent = parentProfile === undefined ? undefined : issuers[parentProfile];
    let issuer = await storedIssuer(hsm, q, profile, pair, parent);
    if (issuer === undefined) {
      if (create === undefined) throw new KeyhubError('NOT_INITIALIZED', `no valid ${profile} CA certificate for token key "${pair.label}": run \`keyhub init\``);
      await refuseRevokedKey(q, profile, pair);
      const subject = caSubject(profile, pair.spki, settings.organization);
      const signer = hsmSigner(hsm, pair.privateKey, pair.spki);
      const req: IssueRequest = {
        profile,
        subject,
        spki: pair.spki,
        days: parent === undefined ? settings.validity.rootDays : settings.validity.intermediateDays,
        extensions: (ski, aki) => caExtensions(ski, aki, parent === undefined ? 1 : 0),
        actor: create.actor,
      };
      const cert = parent === undefined ? await issueSelfSigned(q, signer, req) : await issueUnder(q, parent, req);
      issued.push(cert);
      issuer = makeIssuer(profile, cert.der, nameToText(subject), signer);
    }
    issuers[profile] = issuer;
  }
  return { issuers: issuers as CaIssuers, issued };
}

function subjectText(der: Buffer): string {
  return new X509Certificate(der).subject.split('\n').reverse().join(',');
}

/** PEM certificates of a CA hierarchy made outside Keyhub (config), with the intermediates' keys in the hub token. */
export interface ExternalCaCertificates {
  root: string;
  tlsIssuing: string;
  keyIssuing: string;
}

/**
 * An existing CA named by configuration instead of the hub's own root: only
 * the two issuing keys are in the token, and their certificates are checked
 * like stored ones (key, CA flag, validity, signature up to the given root).
 */
export function externalIssuers(hsm: Hsm, keys: Pick<CaKeys, 'tls-issuing' | 'key-issuing'>, pems: ExternalCaCertificates): CaIssuers {
  const rootDer = new X509Certificate(pems.root).raw;
  const root = makeIssuer('root', rootDer, subjectText(rootDer));
  const rootProblem = caCertificateProblem(root.certificate, undefined, undefined);
  if (rootProblem) throw new KeyhubError('CONFIG_INVALID', `the configured root CA certificate ${rootProblem}`);
  const intermediate = (profile: 'tls-issuing' | 'key-issuing', pem: string): CaIssuer => {
    const der = new X509Certificate(pem).raw;
    const pair = keys[profile];
    const cert = makeIssuer(profile, der, subjectText(der), hsmSigner(hsm, pair.privateKey, pair.spki));
    const problem = caCertificateProblem(cert.certificate, pair.spki, root.certificate);
    if (problem) throw new KeyhubError('CONFIG_INVALID', `the configured ${profile} CA certificate ${problem}`);
    return cert;
  };
  return { root, 'tls-issuing': intermediate('tls-issuing', pems.tlsIssuing), 'key-issuing': intermediate('key-issuing', pems.keyIssuing) };
}
