import type { FastifyInstance } from 'fastify';
import { KeyhubError } from '@keyhub/shared';
import { DecideApproval } from '../../operations/approvals/decide-approval';
import { ListApprovals } from '../../operations/approvals/list-approvals';
import type { RouteDeps } from '../../http/routes';
import { principalOf } from '../../http/auth/authenticate';
import { assertFormAllowed } from '../session';
import { page } from './render';

const HIDE = { schema: { hide: true } };
const PENDING_LIMIT = 100;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Pending approvals, and the one write the dashboard offers: deciding on a
 * request. It runs the same operation under the same permission as
 * POST /v1/approvals/:id/approve (approvals:decide, in the one table), after
 * the same-origin and CSRF checks; the form names the hash the approver saw.
 */
export function registerApprovalPages(app: FastifyInstance, { resolve }: RouteDeps): void {
  app.get('/ui/approvals', HIDE, async (req, reply) => {
    const pending = await resolve(ListApprovals).execute({ state: 'pending', limit: PENDING_LIMIT });
    return page(req, reply, 'approvals.eta', 'Pending approvals', { pending, limit: PENDING_LIMIT });
  });

  for (const decision of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string } }>(`/ui/approvals/:id/${decision}`, HIDE, async (req, reply) => {
      assertFormAllowed(req);
      const body = (req.body ?? {}) as Record<string, unknown>;
      if (!UUID.test(req.params.id)) throw new KeyhubError('APPROVAL_NOT_FOUND', `no approval request ${req.params.id.slice(0, 64)}`);
      if (typeof body.hash !== 'string' || !SHA256_HEX.test(body.hash)) throw new KeyhubError('INPUT_INVALID', 'the form must name the SHA-256 of the request (hash)');
      await resolve(DecideApproval).execute({ requestId: req.params.id, decision, hash: body.hash }, principalOf(req));
      return reply.redirect('/ui/approvals', 303);
    });
  }
}
