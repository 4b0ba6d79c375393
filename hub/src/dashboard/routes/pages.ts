import type { FastifyInstance } from 'fastify';
import { DashboardReads, PAGE_LIMITS } from '../../operations/dashboard/dashboard-reads';
import { DriftReport } from '../../operations/inventory/drift-report';
import type { RouteDeps } from '../../http/routes';
import { page, q, withQuery } from './render';

const HIDE = { schema: { hide: true } };
/** Findings shown at once on the drift page; the counts above them cover all. */
const DRIFT_LIMIT = 200;

/** The read-only pages: key versions, the distribution matrix, listener health, drift. Adapters: one operation each. */
export function registerReadPages(app: FastifyInstance, { resolve }: RouteDeps): void {
  app.get('/ui/keys', HIDE, async (req, reply) => {
    const prefix = q(req.query, 'prefix');
    const result = await resolve(DashboardReads).versions({ prefix, after: q(req.query, 'after', 512) });
    return page(req, reply, 'keys.eta', 'Keys and versions', {
      prefix: prefix ?? '',
      rows: result.rows,
      nextHref: result.next ? withQuery('/ui/keys', { prefix, after: result.next }) : null,
      firstHref: withQuery('/ui/keys', { prefix }),
      limit: PAGE_LIMITS.versions,
    });
  });

  app.get('/ui/matrix', HIDE, async (req, reply) => {
    const keyPrefix = q(req.query, 'key');
    const sitePrefix = q(req.query, 'site');
    const afterKey = q(req.query, 'afterKey');
    const afterSite = q(req.query, 'afterSite');
    const m = await resolve(DashboardReads).matrix({ keyPrefix, sitePrefix, afterKey, afterSite });
    const here = { key: keyPrefix, site: sitePrefix, afterKey, afterSite };
    return page(req, reply, 'matrix.eta', 'Distribution matrix', {
      keyPrefix: keyPrefix ?? '',
      sitePrefix: sitePrefix ?? '',
      matrix: m,
      nextKeysHref: m.nextKey ? withQuery('/ui/matrix', { ...here, afterKey: m.nextKey }) : null,
      nextSitesHref: m.nextSite ? withQuery('/ui/matrix', { ...here, afterSite: m.nextSite }) : null,
      firstHref: withQuery('/ui/matrix', { key: keyPrefix, site: sitePrefix }),
    });
  });

  app.get('/ui/listeners', HIDE, async (req, reply) => {
    const prefix = q(req.query, 'prefix');
    const result = await resolve(DashboardReads).siteHealth({ prefix, after: q(req.query, 'after') });
    return page(req, reply, 'listeners.eta', 'Listener health', {
      prefix: prefix ?? '',
      rows: result.rows,
      now: Date.now(),
      nextHref: result.next ? withQuery('/ui/listeners', { prefix, after: result.next }) : null,
      firstHref: withQuery('/ui/listeners', { prefix }),
    });
  });

  app.get('/ui/drift', HIDE, async (req, reply) => {
    const site = q(req.query, 'site', 128);
    const report = await resolve(DriftReport).execute({ listener: site, limit: DRIFT_LIMIT });
    return page(req, reply, 'drift.eta', 'Drift', { site: site ?? '', report, limit: DRIFT_LIMIT });
  });
}
