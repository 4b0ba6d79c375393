import { readFile, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { api, fingerprintsEqual } from '@keyhub/protocol';
import { HubClient } from '../client';
import { configDir, loginFiles, storeHubFingerprint, storeLogin } from '../credentials';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine } from '../output';
import { readSecret } from '../secret-input';

export function registerSessionCommands(program: Command): void {
  program
    .command('login')
    .description('check a token against the hub and store it (with the hub address and its pinned CA) under ~/.keyhub, owner-only')
    .option('--addr <url>', 'hub API address (default: $KEYHUB_ADDR)')
    .option('--ca-cert <file>', 'the hub CA certificate to pin (default: $KEYHUB_CACERT)')
    .option('--token-stdin', 'read the token from standard input instead of asking with hidden input')
    .option('--hub-fingerprint <fp>', 'pin the hub signing key fingerprint (from `keyhub init`, compared out of band): audit verification then checks against it')
    .action(async (opts: { addr?: string; caCert?: string; tokenStdin?: boolean; hubFingerprint?: string }, cmd: Command) => {
      const g = globals(cmd);
      const addr = (opts.addr ?? process.env.KEYHUB_ADDR)?.replace(/\/+$/, '');
      const caFile = opts.caCert ?? process.env.KEYHUB_CACERT;
      if (!addr?.startsWith('https://')) throw new CliError('CONFIG_INVALID', 'give --addr https://host:port (or set KEYHUB_ADDR)');
      if (!caFile) throw new CliError('CONFIG_INVALID', 'give --ca-cert <file> (the hub CA certificate, from `keyhub init`) or set KEYHUB_CACERT');
      const caPem = await readFile(caFile, 'utf8').catch(() => {
        throw new CliError('CONFIG_INVALID', `cannot read ${caFile}`);
      });
      const token = (await readSecret('token: ', opts.tokenStdin === true)).trim();
      if (!api.parseApiToken(token)) throw new CliError('AUTH_INVALID', 'that is not a Keyhub token (khub_<id>_<secret>)');
      const client = new HubClient({ addr, caPem, token });
      const me = await client.get('/v1/auth/whoami', api.whoami);
      if (opts.hubFingerprint !== undefined) {
        // Checked against what the hub says now: a hub that answers with another key is not the one the operator compared.
        const info = await client.get('/v1/hub', api.hubInfo);
        if (!fingerprintsEqual(opts.hubFingerprint, info.fingerprint)) throw new CliError('HUB_KEY_NOT_PINNED', `the hub's signing key is ${info.fingerprint}, not the ${opts.hubFingerprint} given`);
      }
      const dir = await storeLogin(addr, caPem, token);
      if (opts.hubFingerprint !== undefined) await storeHubFingerprint(opts.hubFingerprint);
      if (g.json) return printJson({ ...me, stored: dir });
      printLine(`logged in to ${addr} as ${me.operator.name} (${me.roles.join(', ')}); token stored in ${dir}`);
    });

  program
    .command('logout')
    .description('forget the stored token (it stays valid until revoked: `keyhub token revoke`)')
    .action(async (_opts: unknown, cmd: Command) => {
      await rm(loginFiles.token(), { force: true });
      if (globals(cmd).json) return printJson({ loggedOut: true, dir: configDir() });
      printLine('stored token removed');
    });

  program
    .command('whoami')
    .description('the operator and roles of the current credential')
    .action(async (_opts: unknown, cmd: Command) => {
      const me = await (await client()).get('/v1/auth/whoami', api.whoami);
      if (globals(cmd).json) return printJson(me);
      printFields([
        ['operator', me.operator.name],
        ['roles', me.roles.join(', ')],
        ['credential', me.token ? `token ${me.token.id}, expires ${me.token.expiresAt}` : 'client certificate'],
        ['permissions', me.permissions.join(' ')],
      ]);
    });

  program
    .command('fingerprint')
    .description('the hub signing key fingerprint, as listeners pin it')
    .action(async (_opts: unknown, cmd: Command) => {
      const info = await (await client()).get('/v1/hub', api.hubInfo);
      if (globals(cmd).json) return printJson({ fingerprint: info.fingerprint });
      printLine(info.fingerprint);
    });
}
