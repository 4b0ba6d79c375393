import { z } from 'zod';
import { api } from '@keyhub/protocol';
import { principalOf } from '../auth/authenticate';
import { CancelApproval } from '../../operations/approvals/cancel-approval';
import { DecideApproval } from '../../operations/approvals/decide-approval';
import { ListApprovals } from '../../operations/approvals/list-approvals';
import { PickupToken } from '../../operations/approvals/pickup-token';
import { ListPolicies, UpdatePolicy } from '../../operations/approvals/policies';
import { responses, type RouteDeps, type ZodApp } from './index';

const idParams = z.strictObject({ id: z.uuid() });

export function registerApprovalRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get('/v1/policies', { schema: { summary: 'approval policies: action, M of the approvers, on or off', tags: ['approvals'], response: responses({ 200: api.policyList }) } }, async () => ({
    policies: await resolve(ListPolicies).execute(),
  }));
  app.put(
    '/v1/policies/:action',
    {
      schema: {
        summary: 'change an approval policy (needs its own quorum once on)',
        tags: ['approvals'],
        params: z.strictObject({ action: api.policyAction }),
        body: api.policyUpdateBody,
        response: responses({ 200: z.strictObject({ policy: api.policyView }), 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(UpdatePolicy).execute(req.params.action, req.body, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );

  app.get(
    '/v1/approvals',
    { schema: { summary: 'approval requests, newest first', tags: ['approvals'], querystring: api.approvalListQuery, response: responses({ 200: api.approvalList }) } },
    async (req) => ({
      requests: await resolve(ListApprovals).execute(req.query),
    }),
  );
  app.get(
    '/v1/approvals/:id',
    { schema: { summary: 'one request with its canonical bytes and hash', tags: ['approvals'], params: idParams, response: responses({ 200: api.approvalRequestView }) } },
    async (req) => resolve(ListApprovals).show(req.params.id),
  );
  for (const decision of ['approve', 'reject'] as const) {
    app.post(
      `/v1/approvals/:id/${decision}`,
      { schema: { summary: `${decision} a request, naming the hash you checked`, tags: ['approvals'], params: idParams, body: api.decideBody, response: responses({ 200: api.approvalRequestView }) } },
      async (req) => resolve(DecideApproval).execute({ requestId: req.params.id, decision, hash: req.body.hash, comment: req.body.comment }, principalOf(req)),
    );
  }
  app.post(
    '/v1/approvals/:id/cancel',
    { schema: { summary: 'withdraw your own pending request', tags: ['approvals'], params: idParams, response: responses({ 200: api.approvalRequestView }) } },
    async (req) => resolve(CancelApproval).execute(req.params.id, principalOf(req)),
  );
  app.post(
    '/v1/approvals/:id/pickup',
    {
      schema: {
        summary: 'pick up, once, the token an approved request created (requester only)',
        tags: ['approvals'],
        params: idParams,
        response: responses({ 200: z.strictObject({ token: api.issuedToken }) }),
      },
    },
    async (req) => ({ token: await resolve(PickupToken).execute(req.params.id, principalOf(req)) }),
  );
}
