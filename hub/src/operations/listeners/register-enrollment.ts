import { injectable } from 'tsyringe';
import { enrollmentFingerprint, verifyEnvelope, type EnrollmentRequest, type SignedEnvelope } from '@keyhub/protocol';
import { assertEcP256, assertRsa, KeyhubError, parseSpki } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { ListenerEntity } from '../../store/entities';
import { findRegistration, setEnrolledUserKey } from '../../store/queries/nats-identities';
import { RateLimitedLog } from '../../nats/rate-limited-log';

/** Shared by every instance: one flood, one line per window. */
const unregistered = new RateLimitedLog();

/**
 * Records an enrollment request for an operator to approve. The request must
 * be signed by the identity key it carries (proof of possession); whether that
 * key really belongs to the site is what the out-of-band fingerprint check decides.
 * Rule: a listener id enrolls again only while it waits for approval or
 * after its root KEK was declared compromised (`rekey_required`, which also
 * re-opens its registration): an approved, active, revoked or decommissioned
 * one is refused; the same request again changes nothing.
 */
@injectable()
export class RegisterEnrollment {
  constructor(private readonly ctx: HubContext) {}

  async execute(envelope: SignedEnvelope<EnrollmentRequest>, subjectListenerId: string): Promise<{ fingerprint: string; replaced: boolean }> {
    const req = envelope.payload;
    if (req.listenerId !== subjectListenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', 'enrollment subject and listener id differ');
    // Ids nobody registered are dropped first: one indexed read, no crypto, no audit row, no audit-chain lock.
    const registration = await findRegistration(this.ctx.ds, req.listenerId);
    if (!registration || registration.state !== 'open' || registration.expires_at.getTime() <= Date.now()) {
      unregistered.warn(this.ctx.logger, { event: 'enrollment_unregistered', listenerId: req.listenerId }, 'enrollment for an id without an open registration dropped');
      throw new KeyhubError('LISTENER_NOT_REGISTERED', `listener ${req.listenerId} has no open registration`);
    }
    const identity = parseSpki(Buffer.from(req.identityKey, 'base64'), 'identity key');
    assertEcP256(identity, 'identity key');
    assertRsa(parseSpki(Buffer.from(req.transportKey, 'base64'), 'transport key'), 2048, 'transport key');
    if (!verifyEnvelope(envelope, identity)) throw new KeyhubError('SIGNATURE_INVALID', 'enrollment request is not signed by its identity key');
    const fingerprint = enrollmentFingerprint(req.listenerId, req.identityKey, req.transportKey, req.natsUserKey);

    return this.ctx.ds.transaction(async (m) => {
      const existing = await m.findOne(ListenerEntity, { where: { id: req.listenerId }, lock: { mode: 'pessimistic_write' } });
      if (existing && existing.fingerprint === fingerprint && registration.nats_user_key === req.natsUserKey) return { fingerprint, replaced: false };
      if (existing && existing.state !== 'pending_approval' && existing.state !== 'rekey_required') {
        await appendAudit(m, [
          { actor: `listener:${req.listenerId}`, action: 'listener.enrollment_refused', subject: `listener:${req.listenerId}`, details: { reason: `listener is ${existing.state}`, fingerprint } },
        ]);
        throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${req.listenerId} is ${existing.state}; only a listener whose root KEK was declared compromised enrolls again`);
      }
      const row = {
        id: req.listenerId,
        state: 'pending_approval' as const,
        identityKey: Buffer.from(req.identityKey, 'base64'),
        transportKey: Buffer.from(req.transportKey, 'base64'),
        oaepHash: req.oaepHash,
        fingerprint,
        targets: req.targets,
        hostname: req.hostname ?? null,
        requestedAt: new Date(req.issuedAt),
        lastSeenAt: new Date(),
      };
      if (existing) await m.update(ListenerEntity, { id: req.listenerId }, row);
      else await m.insert(ListenerEntity, row);
      await setEnrolledUserKey(m, req.listenerId, req.natsUserKey);
      await appendAudit(m, [
        {
          actor: `listener:${req.listenerId}`,
          action: 'listener.enrollment_requested',
          subject: `listener:${req.listenerId}`,
          details: { fingerprint, targets: req.targets.map((t) => `${t.name}:${t.kind}`).join(','), replaced: !!existing },
        },
      ]);
      return { fingerprint, replaced: !!existing };
    });
  }
}
