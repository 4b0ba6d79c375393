import { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { principalOf } from '../auth/authenticate';
import { CreateKey } from '../../operations/keys/create-key';
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
      const base = { algorithm: b.algorithm, usages: b.usages, exportable: b.exportable ?? false, sensitive: b.sensitive ?? false, actor };
      if (b.count === undefined) return reply.code(201).send({ keys: [await resolve(CreateKey).execute({ name: b.name, ...base })] });
      const width = Math.max(5, String(b.count).length);
      const names = Array.from({ length: b.count }, (_, i) => `${b.name}-${String(i + 1).padStart(width, '0')}`);
      if (names.some((n) => n.length > 128)) throw new KeyhubError('INPUT_INVALID', 'key name too long with its counter suffix');
      return reply.code(201).send({ keys: await resolve(CreateKey).executeMany(names.map((name) => ({ name, ...base }))) });
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
