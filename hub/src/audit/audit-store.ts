import type { DataSource } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import type { HubKeyring } from '../crypto/hub-keyring';
import { checkpointBytes } from './audit-hash';
import { verifyAuditChain, type AuditVerification, type StoredAuditEvent, type StoredCheckpoint } from './verify-audit';

const PAGE = 5000;

/** Reads the chain in pages, oldest first, so verification runs in bounded memory. */
export async function* readAuditEvents(ds: DataSource): AsyncGenerator<StoredAuditEvent> {
  let after = 0;
  for (;;) {
    const rows: Array<Record<string, unknown>> = await ds.query(
      'SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2',
      [after, PAGE],
    );
    for (const r of rows) {
      yield {
        seq: Number(r.seq),
        at: r.at as Date,
        actor: r.actor as string,
        action: r.action as string,
        subject: r.subject as string,
        details: r.details as StoredAuditEvent['details'],
        prevHash: r.prev_hash as string,
        hash: r.hash as string,
      };
    }
    if (rows.length < PAGE) return;
    after = Number(rows[rows.length - 1].seq);
  }
}

export async function readCheckpoints(ds: DataSource): Promise<StoredCheckpoint[]> {
  const rows: Array<Record<string, unknown>> = await ds.query('SELECT seq, hash, signature FROM audit_checkpoints ORDER BY seq');
  return rows.map((r) => ({ seq: Number(r.seq), hash: r.hash as string, signature: r.signature as string }));
}

export async function hubSigningKey(ds: DataSource): Promise<Buffer> {
  const [row] = await ds.query('SELECT signing_key FROM hub_identity WHERE id = 1');
  if (!row) throw new KeyhubError('NOT_INITIALIZED', 'database holds no hub identity: run `keyhub init`');
  return row.signing_key as Buffer;
}

export async function verifyStoredAudit(ds: DataSource): Promise<AuditVerification> {
  return verifyAuditChain(readAuditEvents(ds), await readCheckpoints(ds), await hubSigningKey(ds));
}

/** Signs the current chain head with the hub key in the HSM; no-op when the head is already covered. */
export async function writeCheckpoint(ds: DataSource, keyring: HubKeyring): Promise<StoredCheckpoint | undefined> {
  const [head] = await ds.query('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
  if (!head) return undefined;
  const seq = Number(head.seq);
  const [done] = await ds.query('SELECT 1 FROM audit_checkpoints WHERE seq = $1', [seq]);
  if (done) return undefined;
  const signature = (await keyring.signBytes(checkpointBytes(seq, head.hash))).toString('base64');
  await ds.query('INSERT INTO audit_checkpoints (seq, hash, at, signature) VALUES ($1, $2, now(), $3) ON CONFLICT (seq) DO NOTHING', [seq, head.hash, signature]);
  return { seq, hash: head.hash, signature };
}
