import { injectable } from 'tsyringe';
import { HubContext } from '../../context';
import { listListenersWithBacklog } from '../../store/queries/listeners';

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

/** Lists listeners with their backlog. Rule: the backlog is what is queued or sent and not yet confirmed or failed. */
@injectable()
export class ListListeners {
  constructor(private readonly ctx: HubContext) {}

  async execute(): Promise<ListenerRow[]> {
    const rows = await listListenersWithBacklog(this.ctx.ds);
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
