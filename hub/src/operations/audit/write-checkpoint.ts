import type { DataSource } from 'typeorm';
import { checkpointBytes } from '../../audit/audit-hash';
import type { StoredCheckpoint } from '../../audit/verify-audit';
import type { HubKeyring } from '../../crypto/hub-keyring';
import { auditHead, checkpointExists, insertCheckpoint } from '../../store/queries/audit';

/**
 * Signs the current chain head with the hub key in the HSM; no-op when the
 * head is already covered. Rule: a checkpoint is the hub signing key's
 * signature over (seq, hash) of an event in the chain; replicas may race, the
 * first one stored wins.
 */
export async function writeCheckpoint(ds: DataSource, keyring: HubKeyring): Promise<StoredCheckpoint | undefined> {
  const head = await auditHead(ds);
  if (!head) return undefined;
  const seq = Number(head.seq);
  if (await checkpointExists(ds, seq)) return undefined;
  const signature = (await keyring.signBytes(checkpointBytes(seq, head.hash))).toString('base64');
  await insertCheckpoint(ds, seq, head.hash, signature);
  return { seq, hash: head.hash, signature };
}

/** `writeCheckpoint` as a use case object, for the scheduler. */
export class WriteCheckpoint {
  constructor(
    private readonly ds: DataSource,
    private readonly keyring: HubKeyring,
  ) {}

  execute(): Promise<StoredCheckpoint | undefined> {
    return writeCheckpoint(this.ds, this.keyring);
  }
}
