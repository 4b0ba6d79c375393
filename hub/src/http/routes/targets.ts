import { api } from '@keyhub/protocol';
import { principalOf } from '../auth/authenticate';
import { RequestTargetKekApproval } from '../../operations/targets/request-target-kek-approval';
import { ListTargets } from '../../operations/targets/list-targets';
import { RequestTargetUpdateApproval } from '../../operations/targets/request-target-update-approval';
import { RotateTargetKek } from '../../operations/targets/rotate-target-kek';
import { responses, type RouteDeps, type ZodApp } from './index';

/** A listener's targets and their own KEKs (issue 12); the operations are in operations/targets/. */
export function registerTargetRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get(
    '/v1/listeners/:id/targets',
    {
      schema: {
        summary: "a listener's targets: kind, approval (or the signed update awaiting it), the KEK each is served under, health from the last heartbeat, inventory count",
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

  app.post(
    '/v1/listeners/:id/targets/:target/rotate-kek',
    {
      schema: {
        summary: "rotate a PKCS#11 target's own KEK: the new one travels wrapped under the current one and is used once the site confirms its KCV from the target token",
        tags: ['listeners'],
        params: api.targetParams,
        body: api.rotateTargetKekBody,
        response: responses({ 202: api.rotateTargetKekResult }),
      },
    },
    async (req, reply) => reply.code(202).send(await resolve(RotateTargetKek).execute(req.params.id, req.params.target, req.body.reason, principalOf(req))),
  );

  app.post(
    '/v1/listeners/:id/targets/:target/approve-update',
    {
      schema: {
        summary: "approve a site's signed update adding or removing a target, named by its id (dual control under listener.target_update); a removal retires the target's deliveries and KEKs",
        tags: ['listeners'],
        params: api.targetParams,
        body: api.approveTargetUpdateBody,
        response: responses({ 200: api.approveTargetUpdateResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(RequestTargetUpdateApproval).execute(req.params.id, req.params.target, req.body.updateId, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );
}
