import { createPublicKey, randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { targetTransportFingerprint, type TargetKekRequest } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { ListenerEntity } from '../../store/entities';
import { insertTargetKekRequest, nextTargetKekVersion, supersedeRequests, targetKekByRequest } from '../../store/queries/target-keks';

export type TargetKekRequestResult = { outcome: 'recorded' | 'already_recorded'; fingerprint: string; version: number };

/**
 * A site asks for a KEK of its own for one PKCS#11 target (issue 12),
 * signed by its identity key (checked by the UP handler before this runs).
 * Rule: a request changes nothing but its own row: no KEK exists until an
 * operator approves it with the transport key's fingerprint
 * (approve-target-kek.ts). So a target the site adds later is an approved
 * change, never a side effect of a message. Only an active site asks; the
 * transport key must be an RSA key of at least 2048 bits. The same signed
 * request delivered twice is recorded once; a newer request for the same
 * target replaces one still awaiting approval. The request names the
 * target's kind (a PKCS#11 token, or a keystore, cloud or TR-31 target whose
 * transit KEK lives in the site's own token); a kind other than the one the
 * hub knows for that target is refused (TARGET_KIND_MISMATCH, audited,
 * nothing recorded): a site cannot turn a keystore into an HSM by asking.
 */
@injectable()
export class RegisterTargetKekRequest {
  constructor(private readonly ctx: HubContext) {}

  async execute(msg: TargetKekRequest): Promise<TargetKekRequestResult> {
    const transportKey = Buffer.from(msg.transportKey, 'base64');
    assertRsaTransportKey(transportKey);
    const fingerprint = targetTransportFingerprint(msg.listenerId, msg.target, msg.transportKey);
    const out = await this.ctx.ds.transaction(async (m): Promise<TargetKekRequestResult | { mismatch: string }> => {
      const listener = await m.findOne(ListenerEntity, { where: { id: msg.listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${msg.listenerId}`);
      if (listener.state !== 'active') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${msg.listenerId} is ${listener.state}; only an active site asks for target KEKs`);
      const known = await targetKekByRequest(m, msg.id);
      if (known) return { outcome: 'already_recorded', fingerprint: known.fingerprint, version: known.version };
      const knownKind = knownTargetKind(listener, msg.target);
      if (knownKind !== undefined && knownKind !== msg.kind) {
        await appendAudit(m, [
          {
            actor: `listener:${msg.listenerId}`,
            action: 'target_kek.request_refused',
            subject: `listener:${msg.listenerId}`,
            details: { target: msg.target, kind: msg.kind, knownKind, fingerprint, reason: 'TARGET_KIND_MISMATCH' },
          },
        ]);
        return { mismatch: knownKind };
      }
      await supersedeRequests(m, msg.listenerId, msg.target);
      const version = await nextTargetKekVersion(m, msg.listenerId, msg.target);
      const id = randomUUID();
      await insertTargetKekRequest(m, { id, listenerId: msg.listenerId, target: msg.target, kind: msg.kind, version, transportKey, oaepHash: msg.oaepHash, fingerprint, requestId: msg.id });
      await appendAudit(m, [
        {
          actor: `listener:${msg.listenerId}`,
          action: 'target_kek.requested',
          subject: `listener:${msg.listenerId}`,
          details: { target: msg.target, kind: msg.kind, version, fingerprint, newTarget: !listener.targets.some((t) => t.name === msg.target) },
        },
      ]);
      return { outcome: 'recorded', fingerprint, version };
    });
    if ('mismatch' in out) throw kindMismatch(msg.listenerId, msg.target, msg.kind, out.mismatch);
    return out;
  }
}

/** The kind the hub holds for a target of the site (enrollment, approved updates, approved KEK requests); undefined if it knows none. */
export function knownTargetKind(listener: Pick<ListenerEntity, 'targets'>, target: string): string | undefined {
  const t = listener.targets.find((x) => x.name === target);
  return t ? (t.kind ?? 'pkcs11') : undefined;
}

export function kindMismatch(listenerId: string, target: string, asked: string, known: string): KeyhubError {
  return new KeyhubError('TARGET_KIND_MISMATCH', `target ${target} of ${listenerId} is a ${known} target at the hub; the KEK request names ${asked}`, {
    details: { listenerId, target, kind: asked, knownKind: known },
  });
}

function assertRsaTransportKey(spki: Buffer): void {
  let bits: number | undefined;
  try {
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    bits = key.asymmetricKeyType === 'rsa' ? key.asymmetricKeyDetails?.modulusLength : undefined;
  } catch (err) {
    throw new KeyhubError('MESSAGE_MALFORMED', 'target transport key is not a DER SubjectPublicKeyInfo', { cause: err });
  }
  if (bits === undefined || bits < 2048) throw new KeyhubError('MESSAGE_MALFORMED', 'target transport key must be RSA of at least 2048 bits');
}
