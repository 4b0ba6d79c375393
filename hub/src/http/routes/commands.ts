import { api } from '@keyhub/protocol';
import { CommandStatus } from '../../operations/commands/command-status';
import { responses, type RouteDeps, type ZodApp } from './index';

export function registerCommandRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  app.get(
    '/v1/keys/:name/commands',
    {
      schema: {
        summary: "lifecycle commands sent for a key's versions: which sites confirmed each and which are outstanding",
        tags: ['keys'],
        params: api.keyNameParams,
        response: responses({ 200: api.commandStatusList }),
      },
    },
    async (req) => ({ commands: await resolve(CommandStatus).execute(req.params.name) }),
  );

  app.get(
    '/v1/commands',
    { schema: { summary: 'lifecycle commands sent for every key version, with their sites', tags: ['keys'], response: responses({ 200: api.commandStatusList }) } },
    async () => ({ commands: await resolve(CommandStatus).execute() }),
  );
}
