import type { FastifyInstance } from 'fastify';
import { KeyhubError } from '@keyhub/shared';
import { DashboardReads } from '../../operations/dashboard/dashboard-reads';
import type { RouteDeps } from '../../http/routes';
import { page, q, withQuery } from './render';

const HIDE = { schema: { hide: true } };

function seqParam(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9]\d{0,15}$/.test(v)) throw new KeyhubError('INPUT_INVALID', 'an audit sequence number is a positive integer');
  return Number(v);
}

/**
 * The audit trail, newest first, under the verdict of a full verification
 * of the stored chain against the hub signing key from the HSM; each event
 * links to its own page with its hashes and details.
 */
export function registerAuditPages(app: FastifyInstance, { resolve }: RouteDeps): void {
  app.get('/ui/audit', HIDE, async (req, reply) => {
    const reads = resolve(DashboardReads);
    const before = seqParam(q(req.query, 'before', 20));
    const [status, events] = await Promise.all([reads.auditStatus(), reads.auditPage(before)]);
    return page(req, reply, 'audit.eta', 'Audit trail', {
      status,
      rows: events.rows,
      nextHref: events.next ? withQuery('/ui/audit', { before: events.next }) : null,
      firstHref: '/ui/audit',
    });
  });

  app.get<{ Params: { seq: string } }>('/ui/audit/events/:seq', HIDE, async (req, reply) => {
    const seq = seqParam(req.params.seq) as number;
    const event = await resolve(DashboardReads).auditEvent(seq);
    return page(req, reply, 'audit-event.eta', `Audit event ${seq}`, { event, detailsJson: JSON.stringify(event.details, null, 2) });
  });
}
