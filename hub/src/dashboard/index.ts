import { dirname, join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import fastifyStatic from '@fastify/static';
import view from '@fastify/view';
import { Eta } from 'eta';
import { ERROR_CODES } from '@keyhub/protocol';
import type { Logger } from '@keyhub/shared';
import { errorHandler, toApiError } from '../http/errors';
import type { FailedAuthThrottle } from '../http/auth/failed-auth-throttle';
import type { RouteDeps } from '../http/routes';
import { registerAuditPages } from './routes/audit';
import { registerApprovalPages } from './routes/approvals';
import { registerLoginPages } from './routes/login';
import { registerReadPages } from './routes/pages';
import { firstPageFor, page } from './routes/render';
import { clearCookie, readCookie, SESSION_COOKIE, UI_PREFIX } from './session';

/*
 * Templates and the stylesheet are read from the package's src/ (tsc copies
 * no .eta or .css into dist/): no build step. The image must ship
 * hub/src/dashboard/views and static beside dist (see README, Dashboard).
 */
const UI_SOURCE = join(__dirname, '..', '..', 'src', 'dashboard');
const HTMX_DIR = dirname(require.resolve('htmx.org/dist/htmx.min.js'));
const STATIC_FILES = new Set(['/htmx.min.js', '/dashboard.css']);

/** No inline script or style anywhere: htmx and the stylesheet come from /ui/static only. */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  // Not no-referrer: under it Chromium sends `Origin: null` on form posts, and the origin check needs the real one.
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export interface DashboardDeps extends RouteDeps {
  logger: Logger;
  /** The API's throttle of failed authentications: a token pasted into the login form counts like one sent as a bearer token. */
  loginThrottle: FailedAuthThrottle;
}

const wantsHtml = (req: FastifyRequest): boolean => (req.headers.accept ?? '').includes('text/html');

/**
 * Browsers get pages (a 401 sends them to the login form, other refusals an
 * error page naming the stable code); API clients calling a dashboard route
 * with a bearer token get the API's JSON error body.
 */
function dashboardErrors(logger: Logger) {
  const api = errorHandler(logger);
  return async (err: unknown, req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!wantsHtml(req)) return api(err, req, reply);
    const e = toApiError(err);
    const status = ERROR_CODES[e.code].httpStatus;
    if (status >= 500) logger.error({ code: e.code, route: req.routeOptions.url }, 'dashboard request failed');
    if (status === 401) {
      // Someone who never had a session is simply asked to log in; an ended session says why.
      const had = readCookie(req, SESSION_COOKIE) !== undefined;
      clearCookie(reply, SESSION_COOKIE);
      return reply.redirect(had ? `${UI_PREFIX}/login?ended=${encodeURIComponent(e.code)}` : `${UI_PREFIX}/login`, 303);
    }
    const message = e.code === 'INTERNAL' ? 'internal error' : e.message;
    await page(req, reply.code(status), 'error.eta', 'Refused', { code: e.code, message });
  };
}

/**
 * The dashboard: server-rendered pages under /ui on the API's own server,
 * authorized by the same permission table and the same principals (a
 * session cookie is one more way to present an API token). Hidden from the
 * OpenAPI document: it is not an API.
 */
export async function registerDashboard(app: FastifyInstance, deps: DashboardDeps): Promise<void> {
  await app.register(async (ui) => {
    // Registered (not only imported) because it loads its cookie parser on registration; session.ts uses its parse and serialize.
    await ui.register(fastifyCookie, { hook: false });
    await ui.register(formbody, { bodyLimit: 64 * 1024 });
    await ui.register(view, { engine: { eta: new Eta({ cache: true, autoEscape: true }) }, root: join(UI_SOURCE, 'views') });
    await ui.register(fastifyStatic, {
      root: [HTMX_DIR, join(UI_SOURCE, 'static')],
      prefix: `${UI_PREFIX}/static/`,
      schemaHide: true,
      index: false,
      list: false,
      dotfiles: 'deny',
      allowedPath: (pathName) => STATIC_FILES.has(pathName),
    });
    ui.setErrorHandler(dashboardErrors(deps.logger));
    ui.addHook('onSend', async (_req, reply, payload) => {
      for (const [h, v] of Object.entries(SECURITY_HEADERS)) void reply.header(h, v);
      return payload;
    });
    // The first page this operator's roles may open.
    ui.get(UI_PREFIX, { schema: { hide: true } }, async (req, reply) => reply.redirect(firstPageFor(req.principal?.roles ?? []), 303));
    registerLoginPages(ui, deps);
    registerReadPages(ui, deps);
    registerApprovalPages(ui, deps);
    registerAuditPages(ui, deps);
  });
}
