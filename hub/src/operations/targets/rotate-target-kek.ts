import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { encodeEnvelope, MAX_TARGET_KEK_RETIRE, MESSAGE_TYPES, subjects, type api, type TargetKekRotation } from '@keyhub/protocol';
import { aesKcv, KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { targetKekMacData } from '../../crypto/row-mac';
import type { Principal } from '../../domain/principal';
import { ListenerEntity } from '../../store/entities';
import { insertOutboxMessages, notifyOutbox } from '../../store/queries/outbox';
import {
  insertRotatedTargetKek,
  lockActiveTargetKek,
  nextTargetKekVersion,
  pendingTargetKek,
  targetKeksToDestroy,
  targetPackagesInFlightBefore,
  type TargetKekRow,
} from '../../store/queries/target-keks';

/**
 * `keyhub listener target rotate-kek <id> <target>`: the target's next KEK,
 * made in the hub HSM, stored under the KEK store with a row MAC bound to
 * the target (as the first one), and sent signed, wrapped (AES-KWP) under
 * the target's CURRENT KEK, whose row MAC is checked in the HSM before it is
 * unwrapped. Only the target token holds that KEK, so the new one reaches
 * nothing else. Rules, as for root KEK rotation (rotate-root-kek.ts):
 * - only an active site, only a PKCS#11 target with an active KEK of its
 *   own (a target served under the root KEK rotates with it; a transit
 *   KEK unwraps only session objects, so it cannot carry a token KEK:
 *   TARGET_KEK_NOT_ROTATABLE, a new `target request` replaces it);
 * - one rotation of a target at a time (KEK_ROTATION_PENDING, also while a
 *   KEK from an approval awaits its confirmation);
 * - the new KEK wraps nothing until the site confirms its KCV
 *   (confirm-target-kek.ts); until then packages use the current one;
 * - retirement: the site keeps the KEK the new one travels under and
 *   destroys the older ones this message names. So the rotation is refused
 *   (KEK_ROTATION_BLOCKED, retryable) while packages to the target issued
 *   before the current KEK was activated are unconfirmed and something would
 *   be destroyed: they could be under an older version. The re-send job
 *   re-issues such packages under the current KEK, so the block clears.
 */
@injectable()
export class RotateTargetKek {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, target: string, reason: string | undefined, principal: Principal): Promise<api.RotateTargetKekResult> {
    const { keyring } = this.ctx;
    return this.ctx.ds.transaction(async (m) => {
      const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
      if (listener.state !== 'active') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${listener.state}; only an active listener rotates a target KEK`);
      const declared = listener.targets.find((t) => t.name === target);
      if (!declared) throw new KeyhubError('TARGET_UNKNOWN', `listener ${listenerId} has no approved target ${target}`);
      if (declared.kind !== 'pkcs11') {
        throw new KeyhubError('TARGET_KEK_NOT_ROTATABLE', `target ${target} of ${listenerId} is a ${declared.kind} target: its transit KEK is replaced by a new \`target request\`, not rotated`);
      }
      const pending = await pendingTargetKek(m, listenerId, target);
      if (pending) throw new KeyhubError('KEK_ROTATION_PENDING', `KEK version ${pending.version} of target ${target} of ${listenerId} still awaits the site's confirmation`);
      const current = await lockActiveTargetKek(m, listenerId, target);
      if (!current) {
        throw new KeyhubError('TARGET_KEK_NOT_ROTATABLE', `target ${target} of ${listenerId} has no active KEK of its own (it is served under the site's root KEK, or its KEK is not confirmed yet)`);
      }
      if (!current.wrapped || !current.mac || !current.kcv) throw new KeyhubError('ROW_MAC_INVALID', `target KEK v${current.version} of ${listenerId}/${target} has no blob or row MAC`);
      const retire = await targetKeksToDestroy(m, listenerId, target, current.version, MAX_TARGET_KEK_RETIRE);
      if (retire.length > 0 && current.activated_at) {
        const inFlight = await targetPackagesInFlightBefore(m, listenerId, target, current.activated_at);
        if (inFlight > 0) {
          throw new KeyhubError(
            'KEK_ROTATION_BLOCKED',
            `${inFlight} package(s) to ${listenerId}/${target} issued before its KEK v${current.version} was activated are unconfirmed; rotate once they are confirmed or re-sent`,
          );
        }
      }
      const version = await nextTargetKekVersion(m, listenerId, target);
      const kekId = randomUUID();
      const made = await this.makeNext(current);
      const mac = await keyring.macRow(targetKekMacData({ id: kekId, listenerId, target, version, kcv: made.kcv, wrapped: made.stored }));
      const message: TargetKekRotation = {
        type: MESSAGE_TYPES.targetKekRotation,
        id: randomUUID(),
        listenerId,
        issuedAt: new Date().toISOString(),
        target,
        wrappedUnder: { id: current.id, version: current.version },
        kek: { id: kekId, version, kcv: made.kcv, mechanism: 'AES-KWP', blob: made.underCurrent.toString('base64') },
        retire: retire.map((r) => ({ id: r.id, version: r.version })),
      };
      const envelope = await keyring.sign(message);
      await insertRotatedTargetKek(m, {
        id: kekId,
        listenerId,
        target,
        version,
        wrappedUnder: current.id,
        wrapped: made.stored,
        kcv: made.kcv,
        mac,
        approvedBy: principal.name,
        reason: reason ?? null,
      });
      await insertOutboxMessages(m, [[subjects.toListener(listenerId, 'target_kek'), message.id, Buffer.from(encodeEnvelope(envelope)), null]]);
      await notifyOutbox(m);
      await appendAudit(m, [
        {
          actor: principal.name,
          action: 'target_kek.rotation_started',
          subject: `listener:${listenerId}`,
          details: {
            target,
            kekId,
            version,
            kcv: made.kcv,
            wrappedUnderKekId: current.id,
            wrappedUnderVersion: current.version,
            retires: retire.map((r) => `${r.id}:v${r.version}`).join(','),
            reason: reason ?? '',
          },
        },
      ]);
      return {
        listenerId,
        target,
        kekId,
        version,
        kcv: made.kcv,
        wrappedUnder: { kekId: current.id, version: current.version },
        retires: retire.map((r) => ({ kekId: r.id, version: r.version })),
      };
    });
  }

  /** The new KEK exists in the hub HSM only as a session object for this call: stored under the KEK store, and under the target's current KEK. */
  private async makeNext(current: TargetKekRow): Promise<{ kcv: string; stored: Buffer; underCurrent: Buffer }> {
    const { keyring } = this.ctx;
    const hsm = keyring.hsm;
    const kek = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    try {
      const kcv = await aesKcv(hsm, kek);
      const stored = await keyring.wrapRootKek(kek);
      const data = targetKekMacData({ id: current.id, listenerId: current.listener_id, target: current.target, version: current.version, kcv: current.kcv!, wrapped: current.wrapped! });
      let underCurrent: Buffer;
      try {
        underCurrent = await keyring.wrapUnderRootKek({ blob: current.wrapped!, mac: { data, tag: current.mac! } }, kek);
      } catch (err) {
        if (KeyhubError.is(err, 'ROW_MAC_INVALID')) {
          throw new KeyhubError('ROW_MAC_INVALID', `target KEK v${current.version} of ${current.listener_id}/${current.target} does not match its row MAC: nothing was unwrapped`, { cause: err });
        }
        throw err;
      }
      return { kcv, stored, underCurrent };
    } finally {
      await hsm.destroy(kek);
    }
  }
}
