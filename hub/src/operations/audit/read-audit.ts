import { injectable } from 'tsyringe';
import { publicKeyFingerprint, type api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { readCheckpoints, hubSigningKey } from '../../store/queries/audit';
import { auditEventPage, auditEventPageSince } from '../../store/queries/audit-pages';

/**
 * The chain as stored, for auditors: the client verifies it itself, against
 * a fingerprint it pinned, so this hands out data and never a verdict.
 */
@injectable()
export class ReadAudit {
  constructor(private readonly ctx: HubContext) {}

  /** `since`: only events dated at or after it, for locating a period (the client verifies contiguous pages only). */
  async events(after: number, limit: number, since?: string): Promise<{ events: api.AuditEventView[]; next: number | null }> {
    const m = this.ctx.ds.manager;
    const rows = since === undefined ? await auditEventPage(m, after, limit) : await auditEventPageSince(m, after, new Date(since), limit);
    const events = rows.map((r) => ({
      seq: Number(r.seq),
      at: (r.at as Date).toISOString(),
      actor: r.actor as string,
      action: r.action as string,
      subject: r.subject as string,
      details: r.details as Record<string, unknown>,
      prevHash: r.prev_hash as string,
      hash: r.hash as string,
    }));
    return { events, next: events.length === limit ? events[events.length - 1].seq : null };
  }

  async checkpoints(): Promise<{ checkpoints: Array<{ seq: number; hash: string; signature: string }>; signingKey: string; fingerprint: string }> {
    const key = await hubSigningKey(this.ctx.ds.manager);
    return { checkpoints: await readCheckpoints(this.ctx.ds.manager), signingKey: key.toString('base64'), fingerprint: publicKeyFingerprint(key) };
  }
}
