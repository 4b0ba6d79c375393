import type { FastifyInstance } from 'fastify';
import type { InjectionToken } from 'tsyringe';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { api } from '@keyhub/protocol';
import type { z } from 'zod';
import { registerApprovalRoutes } from './approvals';
import { registerAuditRoutes } from './audit';
import { registerCommandRoutes } from './commands';
import { registerDistributionRoutes } from './distributions';
import { registerHubRoutes } from './hub';
import { registerKeyCertificateRoutes } from './key-certificates';
import { registerKeyRoutes } from './keys';
import { registerListenerRoutes } from './listeners';
import { registerOperatorRoutes } from './operators';
import { registerPlacementRoutes } from './placements';
import { registerReportRoutes } from './reports';
import { registerTargetRoutes } from './targets';

/** Resolves an operation from the composition root's container. */
export type Resolve = <T>(cls: InjectionToken<T>) => T;
/** The app with the zod type provider, as route files take it. */
export type ZodApp = ReturnType<typeof withZod>;
export function withZod(app: FastifyInstance) {
  return app.withTypeProvider<ZodTypeProvider>();
}

/** The error bodies every authenticated route may answer with, documented once. */
export function responses<T extends Record<number, z.ZodType>>(ok: T): T & Record<400 | 401 | 403 | 404 | 409 | 413 | 429 | 500 | 503, typeof api.apiErrorBody> {
  const e = api.apiErrorBody;
  return { ...ok, 400: e, 401: e, 403: e, 404: e, 409: e, 413: e, 429: e, 500: e, 503: e };
}

export interface RouteDeps {
  resolve: Resolve;
  version: string;
  health: () => 'ok' | 'starting' | 'stopping';
}

export function registerRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const r = withZod(app);
  registerHubRoutes(r, deps);
  registerKeyRoutes(r, deps);
  registerKeyCertificateRoutes(r, deps);
  registerCommandRoutes(r, deps);
  registerListenerRoutes(r, deps);
  registerTargetRoutes(r, deps);
  registerDistributionRoutes(r, deps);
  registerPlacementRoutes(r, deps);
  registerOperatorRoutes(r, deps);
  registerApprovalRoutes(r, deps);
  registerAuditRoutes(r, deps);
  registerReportRoutes(r, deps);
}
