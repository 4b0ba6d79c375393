import type { DataSource } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import type { HubKeyring } from '../../crypto/hub-keyring';
import { kekMacData, keyVersionMacData } from '../../crypto/row-mac';
import { keyVersionsWithoutMac, setKeyVersionMac } from '../../store/queries/keys';
import { keksWithoutMac, setKekBlobAndMac } from '../../store/queries/listeners';

export interface BackfillResult {
  keyVersions: number;
  keks: number;
  /** KEK rows without a MAC whose blob the old key store cannot open: left without one, so refused at use. */
  keksLeftUnbound: string[];
  /** True when the token says the backfill was done already: nothing was looked at. */
  alreadyDone: boolean;
}

/**
 * Gives the rows that predate row MACs (migration 1732900000000) their MAC,
 * once. Rule: only rows written before this version can lack a MAC (every
 * operation since writes one), and the backfill runs only until it has
 * completed once, which is recorded in the token (a database writer cannot
 * undo that); afterwards a row without a MAC stays refused (ROW_MAC_INVALID)
 * however it got there. Root KEK rows of such a hub were stored under the
 * key store, which then had no unwrap template: they are moved under the
 * KEK store in the same step. Run by `keyhub-server init`, idempotent.
 *
 * What this cannot tell: a row altered in the database after the upgrade
 * and before this first init is MACed as it stands. Run init right after
 * the migration, as the upgrade notes say.
 */
export async function backfillRowMacs(keyring: HubKeyring, ds: DataSource, actor: string): Promise<BackfillResult> {
  if (await keyring.rowMacsBackfilled()) return { keyVersions: 0, keks: 0, keksLeftUnbound: [], alreadyDone: true };
  const result = await ds.transaction(async (m) => {
    const versions = await keyVersionsWithoutMac(m);
    for (const v of versions) await setKeyVersionMac(m, v.version.id, await keyring.macRow(keyVersionMacData(v)));
    let keks = 0;
    const unbound: string[] = [];
    for (const k of await keksWithoutMac(m)) {
      let wrapped: Buffer;
      try {
        wrapped = await keyring.rewrapLegacyKek(k.wrapped);
      } catch (err) {
        // Not a blob under a template-less key store (so not from before this version): it stays unbound, and refused.
        if (!KeyhubError.is(err, 'HSM_ERROR')) throw err;
        unbound.push(k.id);
        continue;
      }
      await setKekBlobAndMac(m, k.id, wrapped, await keyring.macRow(kekMacData({ id: k.id, listenerId: k.listener_id, version: k.version, kcv: k.kcv, wrapped })));
      keks++;
    }
    if (versions.length || keks || unbound.length) {
      await appendAudit(m, [{ actor, action: 'hub.row_macs_backfilled', subject: 'hub', details: { keyVersions: versions.length, keks, keksLeftUnbound: unbound.join(',') } }]);
    }
    return { keyVersions: versions.length, keks, keksLeftUnbound: unbound, alreadyDone: false };
  });
  await keyring.markRowMacsBackfilled();
  return result;
}
