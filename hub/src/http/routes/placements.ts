import { api } from '@keyhub/protocol';
import { principalOf } from '../auth/authenticate';
import { DriftReport } from '../../operations/inventory/drift-report';
import { CreatePlacement } from '../../operations/placements/create-placement';
import { DeletePlacement } from '../../operations/placements/delete-placement';
import { ListPlacements } from '../../operations/placements/list-placements';
import { ReconcilePlacements } from '../../operations/placements/reconcile-placements';
import { SetListenerLabels } from '../../operations/placements/set-labels';
import { UpdatePlacement } from '../../operations/placements/update-placement';
import { responses, type RouteDeps, type ZodApp } from './index';

/** Listener labels, distribution policies (placements) and the drift report. */
export function registerPlacementRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.patch(
    '/v1/listeners/:id/labels',
    {
      schema: {
        summary: 'set and remove labels on a listener (placements select sites by label)',
        tags: ['listeners'],
        params: api.listenerParams,
        body: api.setLabelsBody,
        response: responses({ 200: api.labelsView }),
      },
    },
    async (req) => resolve(SetListenerLabels).execute(req.params.id, req.body, principalOf(req)),
  );

  app.get('/v1/placements', { schema: { summary: 'every distribution policy (placement)', tags: ['placements'], response: responses({ 200: api.placementList }) } }, async () => ({
    placements: await resolve(ListPlacements).execute(),
  }));

  app.post(
    '/v1/placements',
    {
      schema: {
        summary: 'create a distribution policy: key K must be at these sites and targets (dual control for sensitive keys)',
        tags: ['placements'],
        body: api.createPlacementBody,
        response: responses({ 201: api.createPlacementResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(CreatePlacement).execute(req.body, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : reply.code(201).send(out);
    },
  );

  app.get(
    '/v1/placements/:name',
    { schema: { summary: 'one placement, with the sites it has placed its key at', tags: ['placements'], params: api.placementParams, response: responses({ 200: api.placementView }) } },
    async (req) => resolve(ListPlacements).show(req.params.name),
  );

  app.patch(
    '/v1/placements/:name',
    {
      schema: {
        summary: 'change the sites and targets a placement names; sites that leave get destroys, new ones the key (or, for a sensitive key, a widening request)',
        tags: ['placements'],
        params: api.placementParams,
        body: api.updatePlacementBody,
        response: responses({ 200: api.placementView }),
      },
    },
    async (req) => resolve(UpdatePlacement).execute(req.params.name, req.body, principalOf(req)),
  );

  app.delete(
    '/v1/placements/:name',
    {
      schema: {
        summary: 'delete a placement; with destroy=true what it placed is destroyed where no other placement wants it',
        tags: ['placements'],
        params: api.placementParams,
        querystring: api.deletePlacementQuery,
        response: responses({ 200: api.deletePlacementResult }),
      },
    },
    async (req) => resolve(DeletePlacement).execute(req.params.name, { destroy: req.query.destroy === 'true' }, principalOf(req)),
  );

  app.post(
    '/v1/placements/reconcile',
    { schema: { summary: 'reconcile every placement now (the hub also does it on a schedule)', tags: ['placements'], response: responses({ 200: api.reconcileResult }) } },
    async () => resolve(ReconcilePlacements).execute(),
  );

  app.get(
    '/v1/drift',
    {
      schema: {
        summary: 'open drift findings from the sites’ signed inventories (missing, extra, KCV and state mismatches)',
        tags: ['placements'],
        querystring: api.driftQuery,
        response: responses({ 200: api.driftReport }),
      },
    },
    async (req) => resolve(DriftReport).execute(req.query),
  );
}
