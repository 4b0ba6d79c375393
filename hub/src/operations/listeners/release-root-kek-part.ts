import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { aesValueKcv, formatPart, KeyhubError, wipe, type SplitScheme } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { ceremonyMacData, ceremonyPartMacData } from '../../crypto/row-mac';
import type { Principal } from '../../domain/principal';
import { derivePart } from './root-kek-ceremony-parts';

interface CeremonyRow {
  id: string;
  listener_id: string;
  kek_id: string;
  kek_version: number;
  scheme: SplitScheme;
  parts: number;
  threshold: number;
  nonce: Buffer | null;
  mac: Buffer;
}

interface PartRow {
  part: number;
  custodian_name: string;
  kcv: string;
  mac: Buffer;
  released_at: Date | null;
}

/**
 * A custodian fetches their part of a site's root KEK ceremony: only their
 * own (the part row names them, bound by its row MAC, so the database
 * cannot hand it to another operator), only once, and only while the
 * ceremony's nonce exists. The part is derived in the HSM there and then,
 * checked against its recorded KCV, and never stored; the audit records
 * who fetched which part and its KCV. When the last part is out the nonce
 * is erased: no part can ever be derived again.
 */
@injectable()
export class ReleaseRootKekPart {
  constructor(private readonly ctx: HubContext) {}

  async execute(listenerId: string, principal: Principal): Promise<api.RootKekPartView> {
    const { keyring } = this.ctx;
    return this.ctx.ds.transaction(async (m) => {
      await lockAuditChain(m);
      const [c]: CeremonyRow[] = await m.query(
        `SELECT id, listener_id, kek_id, kek_version, scheme, parts, threshold, nonce, mac FROM root_kek_ceremonies
          WHERE listener_id = $1 ORDER BY created_at DESC LIMIT 1 FOR UPDATE`,
        [listenerId],
      );
      if (!c) throw new KeyhubError('CEREMONY_NOT_FOUND', `listener ${listenerId} has no root KEK ceremony`);
      const [p]: PartRow[] = await m.query(`SELECT part, custodian_name, kcv, mac, released_at FROM root_kek_ceremony_parts WHERE ceremony_id = $1 AND custodian_id = $2 FOR UPDATE`, [
        c.id,
        principal.operatorId,
      ]);
      if (!p) throw new KeyhubError('COMPONENT_NOT_YOURS', `you hold no part of the root KEK ceremony of listener ${listenerId}`);
      if (p.released_at) throw new KeyhubError('COMPONENT_ALREADY_RELEASED', `your part of the root KEK ceremony of listener ${listenerId} was released at ${p.released_at.toISOString()}`);
      if (!c.nonce) throw new KeyhubError('CEREMONY_NOT_FOUND', `the root KEK ceremony of listener ${listenerId} is over: its parts can no longer be derived`);
      const facts = { id: c.id, nonce: c.nonce, scheme: c.scheme, parts: c.parts, threshold: c.threshold };
      if (!(await keyring.verifyRow(ceremonyMacData({ ...facts, listenerId: c.listener_id, kekId: c.kek_id, kekVersion: c.kek_version }), c.mac))) {
        throw new KeyhubError('ROW_MAC_INVALID', `root KEK ceremony ${c.id} does not match its row MAC: no part released`);
      }
      if (!(await keyring.verifyRow(ceremonyPartMacData({ ceremonyId: c.id, part: p.part, custodianId: principal.operatorId, kcv: p.kcv }), p.mac))) {
        throw new KeyhubError('ROW_MAC_INVALID', `part ${p.part} of root KEK ceremony ${c.id} does not match its row MAC: not released`);
      }
      const part = await derivePart(keyring, facts, p.part);
      let component: string;
      try {
        if (aesValueKcv(part.value) !== p.kcv) throw new KeyhubError('KCV_MISMATCH', `part ${p.part} of root KEK ceremony ${c.id} does not derive to its recorded KCV`);
        component = formatPart(c.scheme, part);
      } finally {
        wipe(part.value);
      }
      await m.query(`UPDATE root_kek_ceremony_parts SET released_at = now() WHERE ceremony_id = $1 AND part = $2`, [c.id, p.part]);
      const [{ remaining }]: Array<{ remaining: number }> = await m.query(`SELECT count(*)::int AS remaining FROM root_kek_ceremony_parts WHERE ceremony_id = $1 AND released_at IS NULL`, [c.id]);
      if (remaining === 0) await m.query(`UPDATE root_kek_ceremonies SET nonce = NULL, finished_at = now() WHERE id = $1`, [c.id]);
      const [kek]: Array<{ kcv: string }> = await m.query(`SELECT kcv FROM keks WHERE id = $1`, [c.kek_id]);
      await appendAudit(m, [{ actor: principal.name, action: 'kek.component_released', subject: `listener:${listenerId}`, details: { ceremonyId: c.id, part: p.part, kcv: p.kcv, remaining } }]);
      return {
        ceremonyId: c.id,
        listenerId,
        scheme: c.scheme,
        part: p.part,
        parts: c.parts,
        threshold: c.threshold,
        custodian: p.custodian_name,
        component,
        kcv: p.kcv,
        kekKcv: kek.kcv,
        remaining,
      };
    });
  }
}
