import fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { KeyhubError, type Logger } from '@keyhub/shared';
import type { HubConfig } from '../config';
import type { Principal } from '../domain/principal';
import type { AuthenticateToken } from '../operations/operators/authenticate-token';
import { authorizer } from './auth/authenticate';
import { FailedAuthThrottle } from './auth/failed-auth-throttle';
import { ROUTE_PERMISSIONS, routeKey } from './auth/route-permissions';
import { errorHandler } from './errors';
import { registerRoutes, type Resolve } from './routes';
import { registerDashboard } from '../dashboard';
import { sessionPrincipal } from '../dashboard/session';

export interface ApiServerOptions {
  config: HubConfig['api'];
  logger: Logger;
  tls: { key: string; cert: string; ca?: string };
  /** Operators may also authenticate with a client certificate from the hub CA. */
  certificatePrincipal?: (req: FastifyRequest) => Promise<Principal | undefined>;
  resolve: Resolve;
  authenticateToken: AuthenticateToken;
  version: string;
  health: () => 'ok' | 'starting' | 'stopping';
}

const ROUTES = new WeakMap<FastifyInstance, Array<{ method: string; url: string }>>();

/** Every route the server registered (method and URL pattern), as its router has them: for tests and tools that must cover them all. */
export function registeredRoutes(app: FastifyInstance): ReadonlyArray<{ method: string; url: string }> {
  return ROUTES.get(app) ?? [];
}

/**
 * A rate-limit bucket per authenticated credential (counted after the
 * authorizer, so made-up token ids cannot open fresh buckets), or per
 * client address on public routes.
 */
function rateKey(req: FastifyRequest): string {
  const p = req.principal;
  if (p) return p.tokenId ? `token:${p.tokenId}` : `operator:${p.operatorId}`;
  return `ip:${req.ip}`;
}

/**
 * The operators' API: HTTPS only, JSON under /v1/, every body a strict zod
 * schema from `protocol/`, an OpenAPI 3.1 document made from the same
 * schemas, one permission table, errors with the stable codes.
 */
export async function buildApiServer(o: ApiServerOptions): Promise<FastifyInstance> {
  const app = fastify({
    https: { key: o.tls.key, cert: o.tls.cert, ...(o.tls.ca ? { ca: o.tls.ca, requestCert: true, rejectUnauthorized: false } : {}), minVersion: 'TLSv1.2' },
    bodyLimit: o.config.maxBodyBytes,
    logger: false,
    // Keyhub's ids and names never need a looser router; a trailing slash is a different route.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 256 },
    return503OnClosing: true,
    forceCloseConnections: true,
    // A badly encoded path or an overlong parameter fails in the router, where the error handler would not see it.
    frameworkErrors: (err, req, reply) => errorHandler(o.logger)(err, req, reply),
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler(o.logger));
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .type('application/json')
      .send(JSON.stringify({ error: { code: 'ROUTE_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}`, retryable: false } }));
  });
  const routes: Array<{ method: string; url: string }> = [];
  ROUTES.set(app, routes);
  // Fail closed at start: a route nobody wrote a permission for would otherwise be refused only at run time.
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      routes.push({ method, url: route.url });
      if (ROUTE_PERMISSIONS[routeKey(method, route.url)] === undefined) throw new KeyhubError('CONFIG_INVALID', `route ${method} ${route.url} has no entry in the permission table`);
    }
  });
  await app.register(rateLimit, { global: true, hook: 'preHandler', max: o.config.rateLimit.max, timeWindow: o.config.rateLimit.windowSeconds * 1000, keyGenerator: rateKey });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Keyhub hub API',
        version: o.version,
        description: 'Operators reach the hub only through this API. Authenticate with `Authorization: Bearer khub_...` or an operator client certificate.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  // Failed authentications: a tenth of the request budget per address and window.
  const throttle = new FailedAuthThrottle(Math.max(10, Math.ceil(o.config.rateLimit.max / 10)), o.config.rateLimit.windowSeconds * 1000);
  app.addHook('onRequest', authorizer(o.authenticateToken, throttle, o.certificatePrincipal, sessionPrincipal(o.resolve)));
  app.withTypeProvider<ZodTypeProvider>().get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  registerRoutes(app, o);
  await registerDashboard(app, { ...o, loginThrottle: throttle });
  await app.ready();
  return app;
}
