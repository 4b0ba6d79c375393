import { api } from '@keyhub/protocol';
import { ReadAudit } from '../../operations/audit/read-audit';
import { SignCheckpointNow } from '../../operations/audit/sign-checkpoint-now';
import { responses, type RouteDeps, type ZodApp } from './index';

export function registerAuditRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get(
    '/v1/audit/events',
    {
      schema: {
        summary: 'the hash-chained audit events, oldest first, paged by sequence number (optionally only those dated from `since`)',
        tags: ['audit'],
        querystring: api.auditEventsQuery,
        response: responses({ 200: api.auditEventsPage }),
      },
    },
    async (req) => resolve(ReadAudit).events(req.query.after, req.query.limit, req.query.since),
  );
  app.get('/v1/audit/checkpoints', { schema: { summary: 'signed checkpoints and the stored hub signing key', tags: ['audit'], response: responses({ 200: api.checkpointList }) } }, async () =>
    resolve(ReadAudit).checkpoints(),
  );
  app.post(
    '/v1/audit/checkpoints',
    { schema: { summary: 'sign the current chain head now with the hub key in the HSM', tags: ['audit'], response: responses({ 200: api.checkpointResult }) } },
    async () => ({
      checkpoint: (await resolve(SignCheckpointNow).execute()) ?? null,
    }),
  );
}
