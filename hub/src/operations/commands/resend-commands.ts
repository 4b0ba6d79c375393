import type { DataSource } from 'typeorm';
import { appendAudit } from '../../audit/audit-log';
import { claimDueCommands, insertCommandOutbox, markCommandsRequeued } from '../../store/queries/key-commands';
import { notifyOutbox } from '../../store/queries/outbox';

/**
 * Re-sends lifecycle commands a site has not answered in time, as packages
 * are re-sent (distributions/resend-due.ts), to sites that are online and
 * have nothing left in their consumers. Rule: a command is never given up
 * on (a compromise must land wherever the version is); the re-send is the
 * same signed envelope under a new message id, which the site recognises by
 * its command id: it answers with the receipt it journaled and does not run
 * the command twice. Rows are claimed with SKIP LOCKED, so replicas never
 * re-send the same one.
 */
export class ResendCommands {
  constructor(
    private readonly ds: DataSource,
    private readonly delivery: { resendAfterSeconds: number; onlineWindowSeconds: number },
  ) {}

  async execute(withBacklog: (listenerIds: string[]) => Promise<Set<string>> = async () => new Set(), limit = 500): Promise<{ resent: number }> {
    return this.ds.transaction(async (m) => {
      const due = await claimDueCommands(m, this.delivery.resendAfterSeconds, this.delivery.onlineWindowSeconds, limit);
      if (due.length === 0) return { resent: 0 };
      const busy = await withBacklog([...new Set(due.map((d) => d.listener_id))]);
      const resend = due.filter((d) => !busy.has(d.listener_id));
      if (resend.length === 0) return { resent: 0 };
      await insertCommandOutbox(
        m,
        resend.map((d) => [d.subject, `${d.id}.${d.attempts + 1}`, d.envelope, d.urgent ? 1 : 0]),
      );
      await markCommandsRequeued(
        m,
        resend.map((d) => d.id),
      );
      await appendAudit(m, [{ actor: 'hub', action: 'key_command.resent', subject: `key_commands:${resend.length}`, details: { commands: resend.map((d) => d.id) } }]);
      await notifyOutbox(m);
      return { resent: resend.length };
    });
  }
}
