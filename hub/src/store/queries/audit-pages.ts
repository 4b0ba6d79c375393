import type { Queryable } from './queryable';

/** One page of the chain after `after`, oldest first: what the API hands out for verification in the client. */
export async function auditEventPage(m: Queryable, after: number, limit: number): Promise<Array<Record<string, unknown>>> {
  return m.query('SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2', [after, limit]);
}

/** Events after `after` dated at or after `since`, in sequence order: where a period starts (a filtered page, not a chain). */
export async function auditEventPageSince(m: Queryable, after: number, since: Date, limit: number): Promise<Array<Record<string, unknown>>> {
  return m.query('SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_events WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3', [after, since, limit]);
}
