import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { encodeEnvelope, MESSAGE_TYPES, subjects, type api, type RootKekRotation } from '@keyhub/protocol';
import { aesKcv, KeyhubError, type KeyHandle } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { kekMacData } from '../../crypto/row-mac';
import type { Principal } from '../../domain/principal';
import { KekEntity, ListenerEntity } from '../../store/entities';
import { insertOutboxMessages, notifyOutbox } from '../../store/queries/outbox';
import { currentRootKek, hasRetiredKek, nextKekVersion, packagesInFlightBefore, pendingRootKek } from '../../store/queries/site-lifecycle';

/**
 * `keyhub listener rotate-kek <id>`: the site's next root KEK, made in the
 * hub HSM, stored under the KEK store like the first one, and sent wrapped
 * (AES-KWP) under the site's current root KEK, signed by the hub. Rules:
 * - only an active site rotates, one rotation at a time (a KEK awaiting its
 *   confirmation blocks the next: KEK_ROTATION_PENDING);
 * - the new KEK is used for nothing until the site confirms its KCV
 *   (confirm-root-kek-rotation.ts); until then packages use the current one;
 * - retirement: the site keeps its current and its previous root KEK and
 *   destroys older ones when it installs a new one. So a rotation is refused
 *   (KEK_ROTATION_BLOCKED, retryable) while packages issued under the
 *   previous KEK are still unconfirmed: they would arrive at a site that no
 *   longer holds their KEK. The re-send job re-issues such packages under
 *   the current KEK, so the block clears by itself.
 * - a compromised root KEK is never rotated this way (its successor would
 *   travel under it): `keyhub listener rekey --compromised`.
 * The same rule will hold for per-target KEKs once targets issue their own.
 */
@injectable()
export class RotateRootKek {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, reason: string | undefined, principal: Principal): Promise<api.RotateKekResult> {
    const { keyring } = this.ctx;
    return this.ctx.ds.transaction(async (m) => {
      const listener = await m.findOne(ListenerEntity, { where: { id: listenerId }, lock: { mode: 'pessimistic_write' } });
      if (!listener) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${listenerId}`);
      if (listener.state !== 'active') throw new KeyhubError('LISTENER_STATE_INVALID', `listener ${listenerId} is ${listener.state}; only an active listener rotates its root KEK`);
      const pending = await pendingRootKek(m, listenerId);
      if (pending) throw new KeyhubError('KEK_ROTATION_PENDING', `root KEK version ${pending.version} of ${listenerId} still awaits the site's confirmation`);
      const current = await currentRootKek(m, listenerId);
      if (!current || !current.mac) throw new KeyhubError('NOT_ENROLLED', `listener ${listenerId} has no active root KEK with a row MAC`);
      // Only a site that still keeps a previous KEK can lose one on this rotation.
      const inFlight = current.activated_at && (await hasRetiredKek(m, listenerId)) ? await packagesInFlightBefore(m, listenerId, current.activated_at) : 0;
      if (inFlight > 0) {
        throw new KeyhubError('KEK_ROTATION_BLOCKED', `${inFlight} package(s) to ${listenerId} issued under its previous root KEK are unconfirmed; rotate once they are confirmed or re-sent`);
      }
      const version = await nextKekVersion(m, listenerId);
      const kekId = randomUUID();
      const made = await this.makeNext(current, listenerId);
      const mac = await keyring.macRow(kekMacData({ id: kekId, listenerId, version, kcv: made.kcv, wrapped: made.stored }));
      const message: RootKekRotation = {
        type: MESSAGE_TYPES.rootKekRotation,
        id: randomUUID(),
        listenerId,
        issuedAt: new Date().toISOString(),
        wrappedUnder: { id: current.id, version: current.version },
        kek: { id: kekId, version, kcv: made.kcv, mechanism: 'AES-KWP', blob: made.underCurrent.toString('base64') },
      };
      const envelope = await keyring.sign(message);
      await m.insert(KekEntity, { id: kekId, listenerId, version, wrapped: made.stored, kcv: made.kcv, mac, state: 'pending_confirmation', activatedAt: null });
      // On the site's root_kek subject: a one-time message, purged from the stream once the site confirms.
      await insertOutboxMessages(m, [[subjects.toListener(listenerId, 'root_kek'), message.id, Buffer.from(encodeEnvelope(envelope)), null]]);
      await notifyOutbox(m);
      await appendAudit(m, [
        {
          actor: principal.name,
          action: 'kek.rotation_started',
          subject: `listener:${listenerId}`,
          details: { kekId, version, kcv: made.kcv, wrappedUnderKekId: current.id, wrappedUnderVersion: current.version, reason: reason ?? '' },
        },
      ]);
      return { listenerId, kekId, version, kcv: made.kcv, wrappedUnder: { kekId: current.id, version: current.version } };
    });
  }

  /** The new KEK exists in the HSM only as a session object for this call: stored under the KEK store, and under the current root KEK. */
  private async makeNext(
    current: { id: string; version: number; wrapped: Buffer; kcv: string; mac: Buffer | null },
    listenerId: string,
  ): Promise<{ kcv: string; stored: Buffer; underCurrent: Buffer }> {
    const { keyring } = this.ctx;
    const hsm = keyring.hsm;
    const kek: KeyHandle = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    try {
      const kcv = await aesKcv(hsm, kek);
      const stored = await keyring.wrapRootKek(kek);
      const macData = kekMacData({ id: current.id, listenerId, version: current.version, kcv: current.kcv, wrapped: current.wrapped });
      const underCurrent = await keyring.wrapUnderRootKek({ blob: current.wrapped, mac: { data: macData, tag: current.mac! } }, kek);
      return { kcv, stored, underCurrent };
    } finally {
      await hsm.destroy(kek);
    }
  }
}
