import { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { principalOf } from '../auth/authenticate';
import { ListListeners } from '../../operations/listeners/list-listeners';
import { RequestListenerApproval } from '../../operations/listeners/request-listener-approval';
import { responses, type RouteDeps, type ZodApp } from './index';

export function registerListenerRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get('/v1/listeners', { schema: { summary: 'every listener with its state, targets and backlog', tags: ['listeners'], response: responses({ 200: api.listenerList }) } }, async () => ({
    listeners: await resolve(ListListeners).execute(),
  }));

  app.get(
    '/v1/listeners/:id',
    { schema: { summary: 'one listener, with the full enrollment fingerprint', tags: ['listeners'], params: api.listenerParams, response: responses({ 200: api.listenerView }) } },
    async (req) => {
      const row = (await resolve(ListListeners).execute()).find((l) => l.id === req.params.id);
      if (!row) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${req.params.id}`);
      return row;
    },
  );

  app.post(
    '/v1/listeners/:id/approve',
    {
      schema: {
        summary: 'approve an enrollment after comparing fingerprints out of band (dual control under listener.approve)',
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.approveListenerBody,
        response: responses({ 200: api.approveListenerResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(RequestListenerApproval).execute(req.params.id, req.body.fingerprint, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );
}
