import type { StoredCheckpoint } from '../../audit/verify-audit';
import { checkpointFromRow } from './audit';
import type { Queryable } from './queryable';

/** Advisory lock that makes checkpoints one chain across hub replicas (distinct from the chain-append lock: appenders never wait for it). */
const CHECKPOINT_LOCK = 0x6b68_0002;

/** Held until the caller's transaction ends. */
export async function takeCheckpointLock(m: Queryable): Promise<void> {
  await m.query('SELECT pg_advisory_xact_lock($1)', [CHECKPOINT_LOCK]);
}

/** The newest checkpoint, chained or legacy. */
export async function lastCheckpoint(m: Queryable): Promise<StoredCheckpoint | undefined> {
  const rows: Array<Record<string, unknown>> = await m.query('SELECT seq, hash, at, signature, prev_seq, prev_digest FROM audit_checkpoints ORDER BY seq DESC LIMIT 1');
  return rows[0] ? checkpointFromRow(rows[0]) : undefined;
}

/** A chained checkpoint; a second successor of the same checkpoint violates audit_checkpoints_one_successor. */
export async function insertChainedCheckpoint(m: Queryable, cp: StoredCheckpoint & { at: string; prevSeq: number; prevDigest: string }): Promise<void> {
  await m.query('INSERT INTO audit_checkpoints (seq, hash, at, signature, prev_seq, prev_digest) VALUES ($1, $2, $3, $4, $5, $6)', [cp.seq, cp.hash, cp.at, cp.signature, cp.prevSeq, cp.prevDigest]);
}

/** Listeners that witness checkpoints: the active ones (they hold the pinned hub key and consume their DOWN subject). */
export async function witnessListenerIds(m: Queryable): Promise<string[]> {
  const rows: Array<{ id: string }> = await m.query(`SELECT id FROM listeners WHERE state = 'active' ORDER BY id`);
  return rows.map((r) => r.id);
}
