import type { DataSource, EntityManager } from 'typeorm';
import { KeyhubError, type Hsm } from '@keyhub/shared';
import { externalIssuers, resolveIssuers, type CaIssuers, type ExternalCaCertificates } from './ca-bootstrap';
import { requireSigner, type CaIssuer } from './ca-issuer';
import { ensureCaKeys, ensureCaKeysFor, findCaKeys, type CaKeys } from './ca-keys';
import { CA_ERRORS } from './ca-errors';
import { normalizeSerial } from './certificate-parts';
import { buildCrl, isRevocationReason, type RevocationReason } from './crl-builder';
import { keyCertificateExtensions, operatorClientExtensions, tlsServerExtensions } from './extensions';
import { issueUnder, type IssuedCertificate } from './issuance';
import type { DistinguishedName } from './names';
import { defaultDays, DEFAULT_CA_KEY_LABELS, DEFAULT_CA_VALIDITY, type CaKeyLabels, type CaProfile, type CaValidity } from './profiles';
import { findCertificate, findRevokedByIssuer, lockCaBootstrap, revokeCertificate, type CertificateRow, type Queryable } from '../../store/queries/certificates';

export interface HubCaOptions {
  labels?: Partial<CaKeyLabels>;
  validity?: Partial<CaValidity>;
  /** O= of the CA certificates; default "Keyhub". */
  organization?: string;
  /** An existing CA instead of the hub's own root (load only): its PEMs; the issuing keys stay in the token. */
  external?: ExternalCaCertificates;
}

export interface HubCaEnsureOptions extends HubCaOptions {
  /** Runs in the transaction that records the new CA certificates, e.g. to append their audit events. */
  inTransaction?: (m: EntityManager, issued: IssuedCertificate[]) => Promise<void>;
}

/** What a leaf issuance returns: the leaf, the chain a peer sends (leaf, issuing CA) and the root to pin. */
export interface IssuedLeaf extends IssuedCertificate {
  chainPem: string;
  rootPem: string;
}

/** Every issuing call names who asked; `tx` runs the write in the caller's transaction (with its audit event). */
export interface IssueOptions {
  actor: string;
  validityDays?: number;
  tx?: Queryable;
}

const OPERATOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function operatorUri(operatorId: string): string {
  return `urn:keyhub:operator:${operatorId}`;
}

/**
 * The hub's certificate authority: a root and two issuing CAs (TLS for the
 * API server and operator mTLS; keys for certificates that travel with key
 * pairs into keystores), their keys EC P-256 objects in the hub token,
 * certificates built with node-forge and signed by the HSM, every issued
 * certificate and revocation recorded in `ca_certificates`.
 */
export class HubCa {
  private constructor(
    readonly hsm: Hsm,
    /** Where certificates are recorded and looked up; a call's `tx` overrides it for writes. */
    readonly store: Queryable,
    readonly issuers: CaIssuers,
    readonly validity: CaValidity,
  ) {}

  /**
   * Idempotent, for `keyhub init`: creates the missing CA keys in the token,
   * then the missing or unusable CA certificates (one transaction, under an
   * advisory lock so two hubs never race to make two roots).
   */
  static async ensure(hsm: Hsm, ds: DataSource, actor: string, options: HubCaEnsureOptions = {}): Promise<{ ca: HubCa; createdKeys: string[]; issued: IssuedCertificate[] }> {
    if (options.external !== undefined) throw new KeyhubError('CONFIG_INVALID', 'an external CA is loaded, not created: its certificates come from configuration');
    const validity = { ...DEFAULT_CA_VALIDITY, ...options.validity };
    const { keys, created } = await ensureCaKeys(hsm, { ...DEFAULT_CA_KEY_LABELS, ...options.labels });
    const settings = { organization: options.organization ?? 'Keyhub', validity };
    const { issuers, issued } = await ds.transaction(async (m) => {
      await lockCaBootstrap(m);
      const resolved = await resolveIssuers(hsm, m, keys, settings, { actor });
      await options.inTransaction?.(m, resolved.issued);
      return resolved;
    });
    return { ca: new HubCa(hsm, ds, issuers, validity), createdKeys: created, issued };
  }

  /**
   * For `keyhub init` with an external CA: the two issuing key pairs in the
   * token (created when missing), and their public keys (SPKI PEM) for the
   * external CA to certify. The root stays outside; `load` with `external`
   * then checks the certificates it made.
   */
  static async ensureIssuingKeys(hsm: Hsm, options: Pick<HubCaOptions, 'labels'> = {}): Promise<{ createdKeys: string[]; publicKeys: Record<'tls-issuing' | 'key-issuing', string> }> {
    const { keys, created } = await ensureCaKeysFor(hsm, { ...DEFAULT_CA_KEY_LABELS, ...options.labels }, ['tls-issuing', 'key-issuing']);
    const pem = (spki: Buffer): string => `-----BEGIN PUBLIC KEY-----\n${(spki.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END PUBLIC KEY-----\n`;
    return { createdKeys: created, publicKeys: { 'tls-issuing': pem(keys['tls-issuing']!.spki), 'key-issuing': pem(keys['key-issuing']!.spki) } };
  }

  /** For `keyhub serve`: the CA as `ensure` left it; NOT_INITIALIZED when keys or certificates are missing. */
  static async load(hsm: Hsm, store: Queryable, options: HubCaOptions = {}): Promise<HubCa> {
    const validity = { ...DEFAULT_CA_VALIDITY, ...options.validity };
    const labels = { ...DEFAULT_CA_KEY_LABELS, ...options.labels };
    const profiles: CaProfile[] = options.external ? ['tls-issuing', 'key-issuing'] : ['root', 'tls-issuing', 'key-issuing'];
    const { keys, missing } = await findCaKeys(hsm, labels, profiles);
    if (missing.length > 0) throw new KeyhubError('NOT_INITIALIZED', `token "${hsm.tokenLabel}" holds no CA key pair labelled ${missing.join(', ')}: run \`keyhub init\``);
    const issuers = options.external
      ? externalIssuers(hsm, keys as Pick<CaKeys, 'tls-issuing' | 'key-issuing'>, options.external)
      : (await resolveIssuers(hsm, store, keys as CaKeys, { organization: options.organization ?? 'Keyhub', validity })).issuers;
    return new HubCa(hsm, store, issuers, validity);
  }

  get rootPem(): string {
    return this.issuers.root.pem;
  }

  certificatePem(profile: CaProfile): string {
    return this.issuers[profile].pem;
  }

  private leaf(issued: IssuedCertificate, issuer: CaIssuer): IssuedLeaf {
    return { ...issued, chainPem: issued.pem + issuer.pem, rootPem: this.rootPem };
  }

  /** serverAuth certificate for the hub's own TLS endpoints, under the TLS issuing CA. */
  async issueTlsServerCertificate(spkiDer: Buffer, options: IssueOptions & { dnsNames?: string[]; ipAddresses?: string[]; clusterRoute?: boolean }): Promise<IssuedLeaf> {
    const issuer = this.issuers['tls-issuing'];
    const names = [...(options.dnsNames ?? []), ...(options.ipAddresses ?? [])];
    const issued = await issueUnder(options.tx ?? this.store, issuer, {
      profile: 'tls-server',
      subject: { organization: 'Keyhub', commonName: (names[0] ?? 'keyhub').slice(0, 64) },
      spki: spkiDer,
      days: options.validityDays ?? defaultDays(this.validity, 'tls-server'),
      extensions: (ski, aki, keyType) => tlsServerExtensions(ski, aki, { dnsNames: options.dnsNames, ipAddresses: options.ipAddresses }, keyType === 'rsa', options.clusterRoute === true),
      actor: options.actor,
    });
    return this.leaf(issued, issuer);
  }

  /**
   * clientAuth certificate for an operator's mTLS: CN is the operator's name
   * (for people reading logs), the id is in UID and in the SAN URI
   * `urn:keyhub:operator:<uuid>`, which is what the hub trusts.
   */
  async issueClientCertificate(operatorId: string, operatorName: string, spkiDer: Buffer, options: IssueOptions): Promise<IssuedLeaf> {
    if (!OPERATOR_ID.test(operatorId)) throw new KeyhubError('INPUT_INVALID', 'operator id must be a lowercase UUID');
    const issuer = this.issuers['tls-issuing'];
    try {
      const issued = await issueUnder(options.tx ?? this.store, issuer, {
        profile: 'operator-client',
        subject: { organization: 'Keyhub', userId: operatorId, commonName: operatorName },
        spki: spkiDer,
        days: options.validityDays ?? defaultDays(this.validity, 'operator-client'),
        extensions: (ski, aki, keyType) => operatorClientExtensions(ski, aki, operatorUri(operatorId), keyType === 'rsa'),
        operatorId,
        actor: options.actor,
      });
      return this.leaf(issued, issuer);
    } catch (err) {
      // 23503: the operators foreign key; the certificate was signed but is not recorded, so it will never authenticate.
      if ((err as { code?: unknown }).code === '23503') throw new KeyhubError(CA_ERRORS.operatorNotFound, `no operator ${operatorId}`, { cause: err });
      throw err;
    }
  }

  /** A certificate for a key pair that goes into a keystore: digitalSignature, never a CA, under the key issuing CA. */
  async issueKeyCertificate(spkiDer: Buffer, subject: DistinguishedName, options: IssueOptions): Promise<IssuedLeaf> {
    const issuer = this.issuers['key-issuing'];
    const issued = await issueUnder(options.tx ?? this.store, issuer, {
      profile: 'key',
      subject,
      spki: spkiDer,
      days: options.validityDays ?? defaultDays(this.validity, 'key'),
      extensions: (ski, aki) => keyCertificateExtensions(ski, aki),
      actor: options.actor,
    });
    return this.leaf(issued, issuer);
  }

  /**
   * Revokes at once; a second call changes nothing and says so (`changed`).
   * The root cannot be revoked: nothing above it would publish that.
   */
  async revoke(serial: string, actor: string, reason: RevocationReason, tx?: Queryable): Promise<{ certificate: CertificateRow; changed: boolean }> {
    if (!isRevocationReason(reason)) throw new KeyhubError('INPUT_INVALID', 'unknown revocation reason');
    const key = normalizeSerial(serial);
    const q = tx ?? this.store;
    const existing = key ? await findCertificate(q, key) : undefined;
    if (existing === undefined) throw new KeyhubError(CA_ERRORS.certificateNotFound, `no certificate with serial ${key || '(invalid)'}`);
    if (existing.profile === 'root') throw new KeyhubError('INPUT_INVALID', 'the root CA certificate cannot be revoked; replace the CA instead');
    const result = await revokeCertificate(q, key, actor, reason);
    if (result === undefined) throw new KeyhubError(CA_ERRORS.certificateNotFound, `no certificate with serial ${key}`);
    return { certificate: result.row, changed: result.changed };
  }

  async lookup(serial: string, tx?: Queryable): Promise<CertificateRow | undefined> {
    const key = normalizeSerial(serial);
    return key ? findCertificate(tx ?? this.store, key) : undefined;
  }

  /** Revoked, or never issued by this hub: either way not to be trusted. */
  async isRevoked(serial: string, tx?: Queryable): Promise<boolean> {
    const row = await this.lookup(serial, tx);
    return row === undefined || row.revokedAt !== null;
  }

  /**
   * A fresh X.509 v2 CRL of `profile`'s CA, signed by its key in the token.
   * The CRL number is the time in milliseconds: it grows with every CRL, also
   * across hub replicas, without a counter to keep.
   */
  async crlDer(profile: CaProfile): Promise<Buffer> {
    const issuer = this.issuers[profile];
    const thisUpdate = new Date();
    return buildCrl(
      {
        issuer: issuer.parts.subject,
        authorityKeyId: issuer.parts.subjectKeyId,
        thisUpdate,
        nextUpdate: new Date(thisUpdate.getTime() + this.validity.crlDays * 86_400_000),
        crlNumber: BigInt(thisUpdate.getTime()),
        revoked: await findRevokedByIssuer(this.store, issuer.serial, profile, issuer.subjectText),
      },
      requireSigner(issuer),
    );
  }
}
