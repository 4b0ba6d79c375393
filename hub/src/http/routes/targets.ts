import { api } from '@keyhub/protocol';
import { principalOf } from '../auth/authenticate';
import { RequestTargetKekApproval } from '../../operations/targets/request-target-kek-approval';
import { ListTargets } from '../../operations/targets/list-targets';
import { responses, type RouteDeps, type ZodApp } from './index';

/** A listener's targets and their own KEKs (issue 12); the operations are in operations/targets/. */
export function registerTargetRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get(
    '/v1/listeners/:id/targets',
    {
      schema: {
        summary: "a listener's targets: the KEK each is served under (root or its own, and its state) and its inventory count",
        tags: ['listeners'],
        params: api.listenerParams,
        response: responses({ 200: api.targetList }),
      },
    },
    async (req) => ({ listenerId: req.params.id, targets: await resolve(ListTargets).execute(req.params.id) }),
  );

  app.post(
    '/v1/listeners/:id/targets/:target/approve',
    {
      schema: {
        summary: "approve a target's own KEK after comparing its transport key fingerprint with the site's (dual control under listener.target_approve)",
        tags: ['listeners'],
        params: api.targetParams,
        body: api.approveTargetKekBody,
        response: responses({ 200: api.approveTargetKekResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(RequestTargetKekApproval).execute(req.params.id, req.params.target, req.body.fingerprint, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );
}
