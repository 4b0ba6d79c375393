import { api } from '@keyhub/protocol';
import { HubInfo } from '../../operations/hub/hub-info';
import { responses, type RouteDeps, type ZodApp } from './index';

export function registerHubRoutes(app: ZodApp, { resolve, version, health }: RouteDeps): void {
  app.get('/v1/health', { schema: { summary: 'liveness of the API', tags: ['hub'], security: [], response: { 200: api.healthBody, 429: api.apiErrorBody } } }, async () => ({ status: health() }));
  app.get('/v1/hub', { schema: { summary: 'the hub signing key fingerprint (listeners pin it)', tags: ['hub'], response: responses({ 200: api.hubInfo }) } }, async () => ({
    fingerprint: resolve(HubInfo).fingerprint(),
    version,
  }));
  app.get('/v1/hub/ca', { schema: { summary: 'the hub CA certificates (PEM)', tags: ['hub'], response: responses({ 200: api.caBundle }) } }, async () => resolve(HubInfo).caBundle());
}
