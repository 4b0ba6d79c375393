import type { FastifyReply } from 'fastify';
import { api } from '@keyhub/protocol';
import { KeyReport } from '../../operations/reports/key-report';
import { LedgerReport } from '../../operations/reports/ledger-report';
import { SiteReport } from '../../operations/reports/site-report';
import { csvStream } from '../../reports/csv';
import { pdfStream } from '../../reports/pdf';
import type { ReportDocument } from '../../reports/report-document';
import { responses, type RouteDeps, type ZodApp } from './index';

const FORMATS =
  "format=json (default) pages through the rows (`after` = the previous page's `next`); format=csv (text/csv) and format=pdf (application/pdf) hold the whole report, up to REPORT_LIMITS rows";

/** CSV and PDF leave as streams, rendered while the rows are read page by page. */
function sendDocument(reply: FastifyReply, doc: ReportDocument, format: 'csv' | 'pdf'): FastifyReply {
  reply.header('content-disposition', `attachment; filename="${doc.name}.${format}"`);
  reply.header('cache-control', 'no-store');
  if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(csvStream(doc.tables[0]));
  return reply.type('application/pdf').send(pdfStream(doc));
}

export function registerReportRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get(
    '/v1/reports/keys/:name',
    {
      schema: {
        summary: `per key: every version at every site and target, state, pushed and confirmed at, KCV confirmed, requested and approved by. ${FORMATS}`,
        tags: ['reports'],
        params: api.reportKeyParams,
        querystring: api.reportQuery,
        response: responses({ 200: api.keyReport }),
      },
    },
    async (req, reply) => {
      const { format, after, limit } = req.query;
      if (format === 'json') return resolve(KeyReport).page(req.params.name, { ...(after !== undefined ? { after } : {}), limit });
      return sendDocument(reply, await resolve(KeyReport).document(req.params.name, format), format);
    },
  );
  app.get(
    '/v1/reports/sites/:id',
    {
      schema: {
        summary: `per site: the key versions it holds (confirmed, not destroyed), its last heartbeat and inventory, its open drift findings. ${FORMATS}`,
        tags: ['reports'],
        params: api.reportSiteParams,
        querystring: api.reportQuery,
        response: responses({ 200: api.siteReport }),
      },
    },
    async (req, reply) => {
      const { format, after, limit } = req.query;
      if (format === 'json') return resolve(SiteReport).page(req.params.id, { ...(after !== undefined ? { after } : {}), limit });
      return sendDocument(reply, await resolve(SiteReport).document(req.params.id, format), format);
    },
  );
  app.get(
    '/v1/reports/ledger',
    {
      schema: {
        summary: `a ledger extract: the audit events dated from..to (inclusive) with their hashes, and the signed checkpoints that cover them. ${FORMATS}`,
        tags: ['reports'],
        querystring: api.ledgerReportQuery,
        response: responses({ 200: api.ledgerReport }),
      },
    },
    async (req, reply) => {
      const { format, from, to, after, limit } = req.query;
      if (format === 'json') return resolve(LedgerReport).page({ from, to, after, limit });
      return sendDocument(reply, await resolve(LedgerReport).document({ from, to }, format), format);
    },
  );
}
