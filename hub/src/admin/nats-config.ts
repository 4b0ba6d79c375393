import type { Command } from 'commander';
import { HubCa } from '../crypto/ca';
import { NatsAuthority } from '../nats/nats-authority';
import { writeNatsServerConfig } from '../nats/server-config';
import { currentRevocations } from '../store/queries/nats-identities';
import { printFields, printJson } from './output';
import { hubCaOptions } from './ca-options';
import { adminOptions, withRuntime } from './runtime';

const repeat = (v: string, acc: string[]): string[] => [...acc, v];

/**
 * `keyhub-server nats-config`: writes what the NATS servers need to trust
 * the hub as their operator: the operator JWT and accounts (with the
 * current revocations) and TLS material from the hub CA for client
 * connections and cluster routes. Beside the HSM, like init: the operator
 * key signs. Run again to renew the certificate; the accounts change at
 * runtime through the resolver, not through this file.
 */
export function registerNatsConfigCommand(program: Command): void {
  program
    .command('nats-config')
    .description('write the nats-server configuration fragments: operator, accounts, resolver preload, TLS from the hub CA')
    .requiredOption('--out <dir>', 'directory to write accounts.conf, tls.conf, cluster-tls.conf and the PEM files into')
    .option('--server-dir <dir>', 'the same directory as the NATS server sees it (e.g. a container mount), for the paths inside the files')
    .option('--hostname <name>', 'a DNS name of the NATS servers for their certificate (repeatable)', repeat, [] as string[])
    .option('--ip <address>', 'an IP address of the NATS servers for their certificate (repeatable)', repeat, [] as string[])
    .action(async (opts: { out: string; serverDir?: string; hostname: string[]; ip: string[] }, cmd: Command) => {
      const o = adminOptions(cmd);
      const hostnames = opts.hostname.length || opts.ip.length ? opts.hostname : ['localhost'];
      const ips = opts.hostname.length || opts.ip.length ? opts.ip : ['127.0.0.1'];
      const result = await withRuntime(o, async (rt, config) => {
        const authority = await NatsAuthority.load(rt.hsm);
        const ca = await HubCa.load(rt.hsm, rt.ds, await hubCaOptions(config));
        const files = await writeNatsServerConfig(authority, ca, {
          outDir: opts.out,
          serverDir: opts.serverDir,
          hostnames,
          ips,
          actor: 'system:nats-config',
          accountJwt: await authority.accountJwt(await currentRevocations(rt.ds)),
        });
        return { operator: authority.operatorKey, systemAccount: authority.systemAccountKey, account: authority.accountKey, files };
      });
      if (o.json) return printJson(result);
      printFields([
        ['operator', result.operator],
        ['system account', result.systemAccount],
        ['account', result.account],
        ['accounts', result.files.accounts],
        ['client TLS', result.files.tls],
        ['route TLS', result.files.clusterTls],
      ]);
    });
}
