import { api } from '@keyhub/protocol';
import { z } from 'zod';
import { HubInfo } from '../../operations/hub/hub-info';
import { HubCrl } from '../../operations/operators/client-certificates';
import { responses, type RouteDeps, type ZodApp } from './index';

export function registerHubRoutes(app: ZodApp, { resolve, version, health }: RouteDeps): void {
  app.get('/v1/health', { schema: { summary: 'liveness of the API', tags: ['hub'], security: [], response: { 200: api.healthBody, 429: api.apiErrorBody } } }, async () => ({ status: health() }));
  app.get('/v1/hub', { schema: { summary: 'the hub signing key fingerprint (listeners pin it)', tags: ['hub'], response: responses({ 200: api.hubInfo }) } }, async () => ({
    fingerprint: resolve(HubInfo).fingerprint(),
    version,
  }));
  app.get('/v1/hub/ca', { schema: { summary: 'the hub CA certificates (PEM)', tags: ['hub'], response: responses({ 200: api.caBundle }) } }, async () => resolve(HubInfo).caBundle());
  app.get(
    '/v1/hub/crl/:profile',
    {
      schema: {
        summary: "a fresh CRL of an issuing CA ('tls-issuing': operator and server certificates; 'key-issuing': key certificates), DER in base64 and PEM",
        tags: ['hub'],
        params: z.strictObject({ profile: api.crlProfile }),
        response: responses({ 200: api.crlBody }),
      },
    },
    async (req) => resolve(HubCrl).execute(req.params.profile),
  );
}
