import { z } from 'zod';
import { api } from '@keyhub/protocol';
import { principalOf } from '../auth/authenticate';
import { permissionsOf } from '../../domain/roles';
import { ChangeOperatorRoles } from '../../operations/operators/change-roles';
import { RequestClientCertificate, RevokeClientCertificate, ShowClientCertificate } from '../../operations/operators/client-certificates';
import { CreateOperator } from '../../operations/operators/create-operator';
import { CreateToken } from '../../operations/operators/create-token';
import { ListOperators } from '../../operations/operators/list-operators';
import { ListTokens } from '../../operations/operators/list-tokens';
import { RevokeOperator } from '../../operations/operators/revoke-operator';
import { RevokeToken } from '../../operations/operators/revoke-token';
import { responses, type RouteDeps, type ZodApp } from './index';

const nameParams = z.strictObject({ name: api.operatorName });
const tokenParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{32}$/) });
const serialParams = z.strictObject({ serial: api.certificateSerial });

export function registerOperatorRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get('/v1/auth/whoami', { schema: { summary: 'the authenticated operator, roles in force and permissions', tags: ['auth'], response: responses({ 200: api.whoami }) } }, async (req) => {
    const p = principalOf(req);
    const op = await resolve(ListOperators).show(p.name);
    return {
      operator: { id: p.operatorId, name: p.name, roles: op.roles },
      method: p.method,
      token: p.tokenId ? { id: p.tokenId, roles: p.tokenScope, expiresAt: p.expiresAt!.toISOString() } : null,
      roles: p.roles,
      permissions: [...permissionsOf(p.roles)].sort(),
    };
  });

  app.get('/v1/operators', { schema: { summary: 'every operator with roles and state', tags: ['operators'], response: responses({ 200: api.operatorList }) } }, async () => ({
    operators: await resolve(ListOperators).execute(),
  }));
  app.post(
    '/v1/operators',
    {
      schema: {
        summary: 'create an operator and their first token (dual control under operator.manage)',
        tags: ['operators'],
        body: api.createOperatorBody,
        response: responses({ 201: api.createOperatorResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(CreateOperator).execute(req.body, principalOf(req));
      return reply.code('approval' in out ? 202 : 201).send(out);
    },
  );
  app.get('/v1/operators/:name', { schema: { summary: 'one operator', tags: ['operators'], params: nameParams, response: responses({ 200: api.operatorView }) } }, async (req) =>
    resolve(ListOperators).show(req.params.name),
  );
  app.patch(
    '/v1/operators/:name/roles',
    {
      schema: {
        summary: 'grant (dual control under operator.manage) or remove (immediate) roles',
        tags: ['operators'],
        params: nameParams,
        body: api.changeRolesBody,
        response: responses({ 200: z.strictObject({ operator: api.operatorView }), 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(ChangeOperatorRoles).execute(req.params.name, req.body, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );
  app.post(
    '/v1/operators/:name/revoke',
    { schema: { summary: 'revoke an operator and all their tokens, at once', tags: ['operators'], params: nameParams, response: responses({ 200: api.operatorView }) } },
    async (req) => resolve(RevokeOperator).execute(req.params.name, principalOf(req)),
  );

  app.get(
    '/v1/tokens',
    {
      schema: {
        summary: "tokens (never their secrets): your own, or with all=true everyone's",
        tags: ['tokens'],
        querystring: z.strictObject({ all: z.enum(['true', 'false']).optional() }),
        response: responses({ 200: api.tokenList }),
      },
    },
    async (req) => resolve(ListTokens).execute(principalOf(req), req.query.all === 'true'),
  );
  app.post(
    '/v1/tokens',
    {
      schema: {
        summary: 'create a token for yourself (scoped down) or, as admin, for another operator (dual control under operator.manage)',
        tags: ['tokens'],
        body: api.createTokenBody,
        response: responses({ 201: z.strictObject({ token: api.issuedToken }), 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(CreateToken).execute(req.body, principalOf(req));
      return reply.code('approval' in out ? 202 : 201).send(out);
    },
  );
  app.post(
    '/v1/tokens/:id/revoke',
    { schema: { summary: 'revoke a token at once (your own, or any as admin)', tags: ['tokens'], params: tokenParams, response: responses({ 200: z.strictObject({ revoked: z.boolean() }) }) } },
    async (req) => resolve(RevokeToken).execute(req.params.id, principalOf(req)),
  );

  app.post(
    '/v1/operators/:name/certificates',
    {
      schema: {
        summary: 'a client certificate (mTLS) for a public key the operator made: for yourself from an unscoped credential, or as admin for another operator (dual control under operator.manage)',
        tags: ['certificates'],
        params: nameParams,
        body: api.certificateRequestBody,
        response: responses({ 201: api.issuedCertificate, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(RequestClientCertificate).execute(req.params.name, req.body, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : reply.code(201).send(out.certificate);
    },
  );
  app.get(
    '/v1/certificates/:serial',
    { schema: { summary: 'a client certificate by serial (your own, or any as admin or auditor)', tags: ['certificates'], params: serialParams, response: responses({ 200: api.certificateView }) } },
    async (req) => resolve(ShowClientCertificate).execute(req.params.serial, principalOf(req)),
  );
  app.post(
    '/v1/certificates/:serial/revoke',
    {
      schema: {
        summary: 'revoke a client certificate at once (your own, or any as admin)',
        tags: ['certificates'],
        params: serialParams,
        querystring: z.strictObject({ reason: api.certificateRevocationReason.optional() }),
        response: responses({ 200: api.certificateRevoked }),
      },
    },
    async (req) => resolve(RevokeClientCertificate).execute(req.params.serial, req.query.reason, principalOf(req)),
  );
}
