import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { derToPem, type HubCa } from '../../crypto/ca';
import type { ActionDocument } from '../../domain/approval-actions';
import type { Principal } from '../../domain/principal';
import { allows } from '../../domain/roles';
import type { CertificateRow, Queryable } from '../../store/queries/certificates';
import { operatorById, operatorByName } from '../../store/queries/operators';
import { TOKENS } from '../../tokens';
import { DualControl } from '../approvals/dual-control';
import { OperatorChanges } from './operator-changes';

const OPERATOR_CLIENT = 'operator-client';
const EC_CURVES = ['prime256v1', 'secp384r1'];

/** The operator's public key, checked and in canonical form: EC P-256/P-384 or RSA of 2048 bits and more. */
function operatorPublicKey(pem: string): { pem: string; sha256: string } {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new KeyhubError('INPUT_INVALID', 'publicKeyPem is not a PEM public key (SubjectPublicKeyInfo)');
  }
  // createPublicKey also accepts a private key and derives its public half: a private key must never be sent.
  if (/PRIVATE KEY/.test(pem)) throw new KeyhubError('INPUT_INVALID', 'publicKeyPem holds a private key: send only the public key, and keep the private key where it was made');
  const d = key.asymmetricKeyDetails ?? {};
  const ok = (key.asymmetricKeyType === 'ec' && EC_CURVES.includes(d.namedCurve ?? '')) || (key.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048);
  if (!ok) throw new KeyhubError('INPUT_INVALID', 'a client certificate key must be EC P-256 or P-384, or RSA of at least 2048 bits');
  const der = key.export({ type: 'spki', format: 'der' });
  return { pem: key.export({ type: 'spki', format: 'pem' }).toString(), sha256: createHash('sha256').update(der).digest('hex') };
}

async function certificateView(m: Queryable, row: CertificateRow): Promise<api.CertificateView> {
  const op = row.operatorId ? await operatorById(m, row.operatorId) : undefined;
  return {
    serial: row.serial,
    operator: op?.name ?? null,
    certificatePem: derToPem(row.der, 'CERTIFICATE'),
    notBefore: row.notBefore.toISOString(),
    notAfter: row.notAfter.toISOString(),
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

function notFound(serial: string): KeyhubError {
  return new KeyhubError('CERTIFICATE_NOT_FOUND', `no operator certificate with serial ${serial}`);
}

/**
 * An operator's client certificate (mTLS) for a key the operator made. It
 * carries every role the operator holds, whatever they are when it is used,
 * so for oneself it takes an unscoped credential (a token without a role
 * scope, or a certificate). For another operator: admins only, and a
 * request under `operator.manage` when that policy is on, like a token.
 */
@injectable()
export class RequestClientCertificate {
  constructor(
    private readonly ctx: HubContext,
    private readonly dualControl: DualControl,
    private readonly changes: OperatorChanges,
    @inject(TOKENS.ca) private readonly ca: HubCa,
  ) {}

  async execute(name: string, body: api.CertificateRequestBody, principal: Principal): Promise<{ certificate: api.IssuedCertificate } | { approval: api.ApprovalRequestView }> {
    const forSelf = name === principal.name;
    if (forSelf) {
      if (principal.tokenScope !== null) {
        throw new KeyhubError('ROLE_ESCALATION', 'a client certificate carries all of your roles: ask for it with an unscoped token or a certificate, not a token scoped to some roles');
      }
    } else if (!allows(principal.roles, 'operators:write')) {
      throw new KeyhubError('PERMISSION_DENIED', 'only admins request client certificates for other operators');
    }
    const key = operatorPublicKey(body.publicKeyPem);
    const doc: ActionDocument = {
      action: 'operator.manage',
      change: 'certificate',
      name,
      publicKeyPem: key.pem,
      publicKeySha256: key.sha256,
      validityDays: body.validityDays ?? this.ca.validity.operatorClientDays,
    };
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const target = await operatorByName(m, name);
      if (!target) throw new KeyhubError('OPERATOR_NOT_FOUND', `no operator ${name}`);
      const required = forSelf ? 0 : await this.dualControl.requiredFor(m, 'operator.manage');
      if (required > 0) return { approval: await this.dualControl.open(m, doc, required, principal) };
      const applied = await this.changes.apply(m, doc, principal.name, [], true);
      return { certificate: applied.certificate! };
    });
  }
}

/** A client certificate by serial (public material): its operator may read it, and admins and auditors any. */
@injectable()
export class ShowClientCertificate {
  constructor(
    private readonly ctx: HubContext,
    @inject(TOKENS.ca) private readonly ca: HubCa,
  ) {}

  async execute(serial: string, principal: Principal): Promise<api.CertificateView> {
    const row = await this.ca.lookup(serial);
    // Someone else's certificate is "not found" to whoever may not read it, as with tokens.
    if (!row || row.profile !== OPERATOR_CLIENT || (row.operatorId !== principal.operatorId && !allows(principal.roles, 'operators:read'))) throw notFound(serial);
    return certificateView(this.ctx.ds.manager, row);
  }
}

/**
 * Revokes a client certificate at once (its operator, or any admin), with
 * its audit event: the next request that presents it is refused, and the
 * TLS issuing CA's next CRL lists it.
 */
@injectable()
export class RevokeClientCertificate {
  constructor(
    private readonly ctx: HubContext,
    @inject(TOKENS.ca) private readonly ca: HubCa,
  ) {}

  async execute(serial: string, reason: api.CertificateRevocationReason | undefined, principal: Principal): Promise<api.CertificateRevoked> {
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const row = await this.ca.lookup(serial, m);
      if (!row || row.profile !== OPERATOR_CLIENT || (row.operatorId !== principal.operatorId && !allows(principal.roles, 'operators:write'))) throw notFound(serial);
      const { certificate, changed } = await this.ca.revoke(row.serial, principal.name, reason ?? 'unspecified', m);
      if (changed) {
        const op = row.operatorId ? await operatorById(m, row.operatorId) : undefined;
        await appendAudit(m, [
          { actor: principal.name, action: 'certificate.revoked', subject: `certificate:${row.serial}`, details: { operator: op?.name ?? '', reason: certificate.revocationReason ?? 'unspecified' } },
        ]);
      }
      return { serial: certificate.serial, revoked: changed, revokedAt: certificate.revokedAt!.toISOString() };
    });
  }
}

/** A fresh CRL of one of the issuing CAs, for relying parties (and `openssl verify -crl_check`). */
@injectable()
export class HubCrl {
  constructor(@inject(TOKENS.ca) private readonly ca: HubCa) {}

  async execute(profile: api.CrlProfile): Promise<api.CrlBody> {
    const der = await this.ca.crlDer(profile);
    return { profile, der: der.toString('base64'), pem: derToPem(der, 'X509 CRL') };
  }
}
