import type { DataSource } from 'typeorm';
import { KeyhubError, type Hsm } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubKeyring } from '../../crypto/hub-keyring';
import { backfillRowMacs } from '../keys/backfill-row-macs';
import { HubIdentityEntity } from '../../store/entities';

export interface InitResult {
  fingerprint: string;
  createdKeys: string[];
  migrations: string[];
}

/**
 * Idempotent: creates the Hub Master Key and signing key if absent, runs
 * pending migrations, records the hub's public key. Rule: a database
 * belongs to one hub; one initialized by a hub with another signing key is
 * refused.
 */
export async function initHub(hsm: Hsm, ds: DataSource, actor: string): Promise<InitResult> {
  const { keyring, created } = await HubKeyring.ensure(hsm);
  const migrations = (await ds.runMigrations({ transaction: 'each' })).map((m) => m.name);
  await ds.transaction(async (m) => {
    const existing = await m.findOne(HubIdentityEntity, { where: { id: 1 } });
    if (existing && !existing.signingKey.equals(keyring.signingSpki)) {
      throw new KeyhubError('CONFIG_INVALID', `database belongs to hub ${existing.fingerprint}, not to the key in token "${hsm.tokenLabel}" (${keyring.fingerprint})`);
    }
    if (!existing) {
      await m.insert(HubIdentityEntity, { id: 1, signingKey: keyring.signingSpki, fingerprint: keyring.fingerprint, createdAt: new Date() });
      await appendAudit(m, [{ actor, action: 'hub.initialized', subject: `hub:${keyring.fingerprint}`, details: { token: hsm.tokenLabel, createdKeys: created.join(',') } }]);
    }
  });
  // After the identity check: only this hub's own database gets MACs from this token.
  await backfillRowMacs(keyring, ds, actor);
  return { fingerprint: keyring.fingerprint, createdKeys: created, migrations };
}

/** `initHub` as a use case object (no HubContext: the keyring does not exist before it). */
export class InitHub {
  execute(hsm: Hsm, ds: DataSource, actor: string): Promise<InitResult> {
    return initHub(hsm, ds, actor);
  }
}
