import { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { principalOf } from '../auth/authenticate';
import { ListListeners } from '../../operations/listeners/list-listeners';
import { RequestListenerApproval } from '../../operations/listeners/request-listener-approval';
import { RegisterListener } from '../../operations/listeners/register-listener';
import { RevokeListener } from '../../operations/listeners/revoke-listener';
import { RotateRootKek } from '../../operations/listeners/rotate-root-kek';
import { RekeyCompromisedListener } from '../../operations/listeners/rekey-compromised-listener';
import { DecommissionListener } from '../../operations/listeners/decommission-listener';
import { RequestRootKekCeremony } from '../../operations/listeners/request-root-kek-ceremony';
import { ReleaseRootKekPart } from '../../operations/listeners/release-root-kek-part';
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

  app.post(
    '/v1/listeners/:id/root-kek/components',
    {
      schema: {
        summary: 'approve an enrollment with a root KEK by key components (split knowledge): a request the named custodians approve, each then fetching their own part',
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.rootKekCeremonyBody,
        response: responses({ 202: api.approvalPending }),
      },
    },
    async (req, reply) => reply.code(202).send(await resolve(RequestRootKekCeremony).execute(req.params.id, req.body, principalOf(req))),
  );

  app.post(
    '/v1/listeners/:id/root-kek/components/mine',
    {
      schema: {
        summary: "a custodian fetches their own part of a site's root KEK, once, with its KCV",
        tags: ['listeners'],
        params: api.listenerParams,
        response: responses({ 200: api.rootKekPartView }),
      },
    },
    async (req, reply) => {
      // Secret in the body: no cache anywhere on the way.
      void reply.header('cache-control', 'no-store');
      return resolve(ReleaseRootKekPart).execute(req.params.id, principalOf(req));
    },
  );

  app.post(
    '/v1/listeners/:id/register',
    {
      schema: {
        summary: 'register a site id before it enrolls: returns its bootstrap NATS credential (shown once)',
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.registerListenerBody,
        response: responses({ 201: api.registerListenerResult }),
      },
    },
    async (req, reply) => reply.code(201).send(await resolve(RegisterListener).execute(req.params.id, req.body.ttlSeconds, principalOf(req))),
  );

  app.post(
    '/v1/listeners/:id/revoke',
    {
      schema: {
        summary: 'revoke a listener: its NATS identities are cut off at once',
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.revokeListenerBody,
        response: responses({ 200: api.revokeListenerResult }),
      },
    },
    async (req) => resolve(RevokeListener).execute(req.params.id, req.body.reason, principalOf(req)),
  );

  app.post(
    '/v1/listeners/:id/rotate-kek',
    {
      schema: {
        summary: "rotate a site's root KEK: the new one travels wrapped under the current one and is used once the site confirms its KCV",
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.rotateKekBody,
        response: responses({ 202: api.rotateKekResult }),
      },
    },
    async (req, reply) => reply.code(202).send(await resolve(RotateRootKek).execute(req.params.id, req.body.reason, principalOf(req))),
  );

  app.post(
    '/v1/listeners/:id/compromise-kek',
    {
      schema: {
        summary: "declare a site's root KEK compromised: distribution stops, the site must enroll again, and the keys to re-key are listed",
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.compromiseKekBody,
        response: responses({ 200: api.compromiseKekResult }),
      },
    },
    async (req) => resolve(RekeyCompromisedListener).execute(req.params.id, req.body.reason, principalOf(req)),
  );

  app.post(
    '/v1/listeners/:id/decommission',
    {
      schema: {
        summary: 'decommission a site: root KEKs revoked, destroys sent, then its NATS identity revoked (dual control under listener.decommission)',
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.decommissionBody,
        response: responses({ 200: api.decommissionResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(DecommissionListener).execute(req.params.id, req.body, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );
}
