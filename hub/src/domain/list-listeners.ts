import { injectable } from 'tsyringe';
import { HubContext } from '../context';

export interface ListenerRow {
  id: string;
  state: string;
  fingerprint: string;
  targets: string[];
  hostname: string | null;
  requestedAt: string;
  activatedAt: string | null;
  lastSeenAt: string | null;
  backlog: number;
}

@injectable()
export class ListListeners {
  constructor(private readonly ctx: HubContext) {}

  async execute(): Promise<ListenerRow[]> {
    const rows: Array<Record<string, unknown>> = await this.ctx.ds.query(
      // One pass over the unconfirmed distributions (a partial index keeps that set small), not one per listener.
      `SELECT l.id, l.state, l.fingerprint, l.targets, l.hostname, l.requested_at, l.activated_at, l.last_seen_at, coalesce(b.n, 0) AS backlog
         FROM listeners l
         LEFT JOIN (SELECT listener_id, count(*) AS n FROM distributions WHERE confirmed_at IS NULL AND state IN ('queued', 'sent') GROUP BY listener_id) b ON b.listener_id = l.id
        ORDER BY l.id`,
    );
    return rows.map((r) => ({
      id: r.id as string,
      state: r.state as string,
      fingerprint: r.fingerprint as string,
      targets: (r.targets as Array<{ name: string; kind: string }>).map((t) => `${t.name} (${t.kind})`),
      hostname: (r.hostname as string | null) ?? null,
      requestedAt: (r.requested_at as Date).toISOString(),
      activatedAt: r.activated_at ? (r.activated_at as Date).toISOString() : null,
      lastSeenAt: r.last_seen_at ? (r.last_seen_at as Date).toISOString() : null,
      backlog: Number(r.backlog),
    }));
  }
}
