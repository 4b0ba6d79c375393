import { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { principalOf } from '../auth/authenticate';
import { ChangeKeyState } from '../../operations/keys/change-key-state';
import { ChangeTargetPolicy } from '../../operations/keys/change-target-policy';
import { CreateKey } from '../../operations/keys/create-key';
import { RotateKey } from '../../operations/keys/rotate-key';
import { ShowKey } from '../../operations/keys/show-key';
import { KeyStatus } from '../../operations/keys/key-status';
import { ListKeys } from '../../operations/keys/list-keys';
import { responses, type RouteDeps, type ZodApp } from './index';

export function registerKeyRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get(
    '/v1/keys',
    { schema: { summary: 'keys with their current version and its KCV, paged by name', tags: ['keys'], querystring: api.keyListQuery, response: responses({ 200: api.keyList }) } },
    async (req) => resolve(ListKeys).page(req.query),
  );

  app.post(
    '/v1/keys',
    { schema: { summary: 'generate keys in the hub HSM (stored only wrapped under the master key)', tags: ['keys'], body: api.createKeyBody, response: responses({ 201: api.createKeyResult }) } },
    async (req, reply) => {
      const b = req.body;
      const actor = principalOf(req).name;
      const lifecycle = {
        ...(b.activateAt ? { activateAt: new Date(b.activateAt) } : {}),
        ...(b.cryptoperiodSeconds !== undefined ? { cryptoperiodSeconds: b.cryptoperiodSeconds } : {}),
        ...(b.rotateEverySeconds !== undefined ? { rotateEverySeconds: b.rotateEverySeconds } : {}),
        ...(b.graceSeconds !== undefined ? { graceSeconds: b.graceSeconds } : {}),
      };
      const base = {
        algorithm: b.algorithm,
        usages: b.usages,
        exportable: b.exportable ?? false,
        sensitive: b.sensitive ?? false,
        targetKinds: b.targetKinds,
        allowClearImport: b.allowClearImport ?? false,
        ...lifecycle,
        actor,
      };
      if (b.count === undefined) return reply.code(201).send({ keys: [await resolve(CreateKey).execute({ name: b.name, ...base })] });
      const width = Math.max(5, String(b.count).length);
      const names = Array.from({ length: b.count }, (_, i) => `${b.name}-${String(i + 1).padStart(width, '0')}`);
      if (names.some((n) => n.length > 128)) throw new KeyhubError('INPUT_INVALID', 'key name too long with its counter suffix');
      return reply.code(201).send({ keys: await resolve(CreateKey).executeMany(names.map((name) => ({ name, ...base }))) });
    },
  );

  app.get(
    '/v1/keys/:name',
    {
      schema: {
        summary: 'one key with every version: NIST SP 800-57 states, KCVs, activation and deactivation dates',
        tags: ['keys'],
        params: api.keyNameParams,
        response: responses({ 200: api.keyDetail }),
      },
    },
    async (req) => resolve(ShowKey).execute(req.params.name),
  );

  app.put(
    '/v1/keys/:name/target-policy',
    {
      schema: {
        summary: 'the kinds of target a key may reach, and whether cloud import in clear (JWK) is allowed; a widening is dual control under key.target_policy',
        tags: ['keys'],
        params: api.keyNameParams,
        body: api.targetPolicyBody,
        response: responses({ 200: api.targetPolicyResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const out = await resolve(ChangeTargetPolicy).execute(req.params.name, req.body, principalOf(req));
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );

  app.post(
    '/v1/keys/:name/rotate',
    {
      schema: {
        summary: 'a new version of the key, sent to every site that holds it; older versions are deactivated after the grace period',
        tags: ['keys'],
        params: api.keyNameParams,
        body: api.rotateKeyBody,
        response: responses({ 201: api.rotateKeyResult }),
      },
    },
    async (req, reply) => reply.code(201).send(await resolve(RotateKey).execute(req.params.name, principalOf(req).name, req.body.reason)),
  );

  app.post(
    '/v1/keys/:name/state',
    {
      schema: {
        summary: 'suspend, resume, activate, deactivate, compromise or destroy a key version, and tell every site that holds it (dual control for destroy and compromise by policy)',
        tags: ['keys'],
        params: api.keyNameParams,
        body: api.keyStateBody,
        response: responses({ 200: api.keyStateResult, 202: api.approvalPending }),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const out = await resolve(ChangeKeyState).execute(
        { name: req.params.name, action: b.action, ...(b.version ? { version: b.version } : {}), ...(b.reason ? { reason: b.reason } : {}) },
        principalOf(req),
      );
      return 'approval' in out ? reply.code(202).send(out) : out;
    },
  );

  app.get(
    '/v1/keys/:name/status',
    { schema: { summary: 'where every version of a key is: one row per version, listener and target', tags: ['keys'], params: api.keyNameParams, response: responses({ 200: api.statusList }) } },
    async (req) => ({ rows: await resolve(KeyStatus).execute(req.params.name) }),
  );

  app.get('/v1/status', { schema: { summary: 'every key version at every listener and target', tags: ['keys'], response: responses({ 200: api.statusList }) } }, async () => ({
    rows: await resolve(KeyStatus).execute(),
  }));
}
