import { api } from '@keyhub/protocol';
import { principalOf } from '../auth/authenticate';
import { FollowProgress } from '../../operations/distributions/follow-progress';
import { RequestDistribution } from '../../operations/distributions/request-distribution';
import { responses, type RouteDeps, type ZodApp } from './index';

export function registerDistributionRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.post(
    '/v1/distributions',
    {
      schema: {
        summary: 'push key versions to listeners; confirmed or in-flight destinations are left alone (dual control for sensitive keys)',
        tags: ['distributions'],
        body: api.distributeBody,
        response: responses({ 200: api.distributeResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(RequestDistribution).execute(req.body, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );

  app.post(
    '/v1/distributions/progress',
    {
      schema: {
        summary: 'how far the distributions of these key versions to these destinations have got',
        tags: ['distributions'],
        body: api.progressBody,
        response: responses({ 200: api.progressResult }),
      },
    },
    async (req) => resolve(FollowProgress).execute(req.body),
  );
}
