import { Option, type Command } from 'commander';
import { z } from 'zod';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine, printTable } from '../output';

function printToken(t: api.IssuedToken): void {
  printFields([
    ['operator', t.operator],
    ['token id', t.id],
    ['scope', t.roles ? t.roles.join(', ') : "all of the operator's roles"],
    ['expires', t.expiresAt],
  ]);
  printLine('token (shown once, store it now):');
  printLine(t.token);
}

function ttl(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([smhd]?)$/.exec(value);
  if (!m) throw new CliError('INPUT_INVALID', '--ttl is a number of seconds, or with a unit: 90m, 12h, 30d');
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

export function registerOperatorCommands(program: Command): void {
  const operator = program.command('operator').description('operators, their roles and their standing (admins)');

  operator
    .command('create')
    .description('create an operator with roles; prints their first token once (or a request, under dual control)')
    .argument('<name>', 'operator name (lower case)')
    .addOption(new Option('--role <role...>', 'roles').choices(api.ROLES).makeOptionMandatory())
    .option('--token-ttl <ttl>', 'lifetime of the first token (e.g. 30d)')
    .action(async (name: string, opts: { role: api.Role[]; tokenTtl?: string }, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).call('POST', '/v1/operators', { 201: api.createOperatorResult, 202: api.approvalPending }, { name, roles: opts.role, tokenTtlSeconds: ttl(opts.tokenTtl) });
      if (g.json) return printJson(r.body);
      if (r.status === 202) {
        printPending(r.body.approval);
        return printLine(`Once approved: keyhub approvals pickup ${r.body.approval.id}`);
      }
      printLine(`operator ${r.body.operator.name} created with roles ${r.body.operator.roles.join(', ')}`);
      printToken(r.body.token);
    });

  operator
    .command('list')
    .description('every operator')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const { operators } = await (await client()).get('/v1/operators', api.operatorList);
      if (g.json) return printJson(operators);
      printTable(operators, [
        { header: 'name', value: (o) => o.name },
        { header: 'roles', value: (o) => o.roles.join(',') },
        { header: 'state', value: (o) => o.state },
        { header: 'tokens', value: (o) => o.activeTokens, align: 'right' },
        { header: 'created', value: (o) => `${o.createdAt} by ${o.createdBy}` },
      ]);
    });

  operator
    .command('show')
    .argument('<name>', 'operator name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const o = await (await client()).get(`/v1/operators/${encodeURIComponent(name)}`, api.operatorView);
      if (g.json) return printJson(o);
      printFields([
        ['name', o.name],
        ['id', o.id],
        ['roles', o.roles.join(', ')],
        ['state', o.state],
        ['active tokens', o.activeTokens],
        ['created', `${o.createdAt} by ${o.createdBy}`],
        ['revoked', o.revokedAt],
      ]);
    });

  operator
    .command('roles')
    .description('grant roles (dual control under operator.manage) or remove them (immediate)')
    .argument('<name>', 'operator name')
    .addOption(new Option('--add <role...>', 'roles to grant').choices(api.ROLES))
    .addOption(new Option('--remove <role...>', 'roles to take away').choices(api.ROLES))
    .action(async (name: string, opts: { add?: api.Role[]; remove?: api.Role[] }, cmd: Command) => {
      const g = globals(cmd);
      const r = await (
        await client()
      ).call('PATCH', `/v1/operators/${encodeURIComponent(name)}/roles`, { 200: z.strictObject({ operator: api.operatorView }), 202: api.approvalPending }, { add: opts.add, remove: opts.remove });
      if (g.json) return printJson(r.body);
      if (r.status === 202) return printPending(r.body.approval);
      printLine(`operator ${r.body.operator.name}: roles ${r.body.operator.roles.join(', ') || 'none'}`);
    });

  operator
    .command('revoke')
    .description('revoke an operator and all their tokens, at once')
    .argument('<name>', 'operator name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const o = await (await client()).post(`/v1/operators/${encodeURIComponent(name)}/revoke`, api.operatorView);
      if (g.json) return printJson(o);
      printLine(`operator ${o.name} is ${o.state}`);
    });

  const token = program.command('token').description('API tokens');

  token
    .command('create')
    .description('a token for yourself (scoped down), or as admin for another operator; printed once')
    .option('--operator <name>', 'another operator (admins; dual control under operator.manage)')
    .addOption(new Option('--role <role...>', 'scope the token down to these roles').choices(api.ROLES))
    .option('--ttl <ttl>', 'lifetime (seconds, or 90m, 12h, 30d)')
    .option('--description <text>', 'what the token is for')
    .action(async (opts: { operator?: string; role?: api.Role[]; ttl?: string; description?: string }, cmd: Command) => {
      const g = globals(cmd);
      const body = { operator: opts.operator, roles: opts.role, ttlSeconds: ttl(opts.ttl), description: opts.description };
      const r = await (await client()).call('POST', '/v1/tokens', { 201: api.createTokenPickup, 202: api.approvalPending }, body);
      if (g.json) return printJson(r.body);
      if (r.status === 202) {
        printPending(r.body.approval);
        return printLine(`Once approved: keyhub approvals pickup ${r.body.approval.id}`);
      }
      printToken(r.body.token);
    });

  token
    .command('list')
    .description("your tokens (with --all: everyone's, for admins and auditors)")
    .option('--all', "every operator's tokens")
    .action(async (opts: { all?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const { tokens } = await (await client()).get(`/v1/tokens${opts.all ? '?all=true' : ''}`, api.tokenList);
      if (g.json) return printJson(tokens);
      printTable(tokens, [
        { header: 'id', value: (t) => t.id },
        { header: 'operator', value: (t) => t.operator },
        { header: 'scope', value: (t) => t.roles?.join(',') ?? 'all' },
        { header: 'expires', value: (t) => t.expiresAt },
        { header: 'last used', value: (t) => t.lastUsedAt },
        { header: 'revoked', value: (t) => t.revokedAt },
        { header: 'description', value: (t) => t.description },
      ]);
    });

  token
    .command('revoke')
    .description('revoke a token at once')
    .argument('<id>', 'token id (the 32 hex digits after khub_)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).post(`/v1/tokens/${encodeURIComponent(id)}/revoke`, z.strictObject({ revoked: z.boolean() }));
      if (g.json) return printJson({ id, ...r });
      printLine(r.revoked ? `token ${id} revoked` : `token ${id} was already revoked`);
    });
}
