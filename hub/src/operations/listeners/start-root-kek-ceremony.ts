import { randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { MESSAGE_TYPES, type RootKekCeremony } from '@keyhub/protocol';
import { aesKcv, wipe, type SplitScheme } from '@keyhub/shared';
import type { HubKeyring } from '../../crypto/hub-keyring';
import { ceremonyMacData, ceremonyPartMacData } from '../../crypto/row-mac';
import { deriveAll, partKcvs } from './root-kek-ceremony-parts';

/** What an approved ceremony request fixes: the scheme, and one custodian per part, in part order. */
export interface CeremonyRequest {
  id: string;
  scheme: SplitScheme;
  threshold: number;
  custodians: Array<{ id: string; name: string }>;
  requestedBy: string;
}

/**
 * The root KEK of a ceremony, made inside the enrollment approval's
 * transaction (approve-listener.ts): the parts are derived in the HSM, the
 * root KEK is their combination, created in the HSM as a session object
 * only long enough for its KCV and its blob under the KEK store, and every
 * clear buffer is wiped before this returns. Stores the ceremony and one
 * row per part (row MACs), and returns the signed-to-be message for the
 * site: KCVs and custodians, no key material.
 */
export async function startCeremony(
  m: EntityManager,
  keyring: HubKeyring,
  c: CeremonyRequest & { listenerId: string; kekId: string; kekVersion: number; issuedAt: Date },
): Promise<{ kcv: string; wrapped: Buffer; partKcvs: string[]; message: RootKekCeremony }> {
  const hsm = keyring.hsm;
  const nonce = randomBytes(32);
  const facts = { id: c.id, nonce, scheme: c.scheme, parts: c.custodians.length, threshold: c.threshold };
  const { parts, kek } = await deriveAll(keyring, facts);
  let kcv: string;
  let wrapped: Buffer;
  let kcvs: string[];
  try {
    kcvs = partKcvs(parts);
    const handle = await hsm.createAesKey(kek, { token: false, extractable: true, sign: true });
    try {
      kcv = await aesKcv(hsm, handle);
      wrapped = await keyring.wrapRootKek(handle);
    } finally {
      await hsm.destroy(handle);
    }
  } finally {
    wipe(kek, ...parts.map((p) => p.value));
  }
  const mac = await keyring.macRow(ceremonyMacData({ ...facts, listenerId: c.listenerId, kekId: c.kekId, kekVersion: c.kekVersion }));
  await m.query(
    `INSERT INTO root_kek_ceremonies (id, listener_id, kek_id, kek_version, scheme, parts, threshold, nonce, mac, requested_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [c.id, c.listenerId, c.kekId, c.kekVersion, c.scheme, facts.parts, c.threshold, nonce, mac, c.requestedBy, c.issuedAt],
  );
  for (const [i, custodian] of c.custodians.entries()) {
    const part = i + 1;
    const partMac = await keyring.macRow(ceremonyPartMacData({ ceremonyId: c.id, part, custodianId: custodian.id, kcv: kcvs[i] }));
    await m.query(`INSERT INTO root_kek_ceremony_parts (ceremony_id, part, custodian_id, custodian_name, kcv, mac) VALUES ($1, $2, $3, $4, $5, $6)`, [
      c.id,
      part,
      custodian.id,
      custodian.name,
      kcvs[i],
      partMac,
    ]);
  }
  const message: RootKekCeremony = {
    type: MESSAGE_TYPES.rootKekCeremony,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.issuedAt.toISOString(),
    hubKey: keyring.signingSpki.toString('base64'),
    ceremonyId: c.id,
    kek: { id: c.kekId, version: c.kekVersion, kcv },
    scheme: c.scheme,
    threshold: c.threshold,
    parts: c.custodians.map((cu, i) => ({ index: i + 1, kcv: kcvs[i], custodian: cu.name })),
  };
  return { kcv, wrapped, partKcvs: kcvs, message };
}
