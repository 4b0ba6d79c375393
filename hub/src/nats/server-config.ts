import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { HubCa } from '../crypto/ca';
import type { NatsAuthority } from './nats-authority';

/**
 * The nats-server configuration the project writes, as fragments a node's
 * own config includes (its name, ports, store and resolver directory stay
 * with the node):
 * - accounts.conf: the operator JWT, the system account, and the accounts
 *   preloaded into the resolver;
 * - tls.conf: TLS required on client connections;
 * - cluster-tls.conf: mutual TLS on routes (goes inside `cluster { }`).
 *
 * Resolver: `full` (the NATS-based resolver), not MEMORY. A MEMORY resolver
 * only learns of a new account JWT from its config file, so a revocation
 * would mean rewriting and reloading every node. The full resolver stores
 * account JWTs in a directory per node, takes updates signed by the
 * operator over `$SYS.REQ.CLAIMS.UPDATE`, and servers of a cluster pass an
 * update to each other and sync their directories when a node comes back
 * (checked on 2.9.10: an update sent to one node cut a revoked user's live
 * connection on another). Preloaded accounts only seed an empty directory;
 * a newer stored JWT wins.
 */
export interface NatsConfigFiles {
  accounts: string;
  tls: string;
  clusterTls: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface NatsConfigOptions {
  outDir: string;
  /** Where the server will find the files, when it sees them elsewhere (a container mount). */
  serverDir?: string;
  hostnames: string[];
  ips: string[];
  actor: string;
  /** The Keyhub account JWT to preload (with the current revocations). */
  accountJwt: string;
}

const q = (v: string): string => JSON.stringify(v);

export async function writeNatsServerConfig(authority: NatsAuthority, ca: HubCa, o: NatsConfigOptions): Promise<NatsConfigFiles> {
  await mkdir(o.outDir, { recursive: true, mode: 0o755 });
  const at = (name: string): string => path.join(o.serverDir ?? path.resolve(o.outDir), name);
  const local = (name: string): string => path.join(o.outDir, name);

  // The server's TLS key is made here and written for nats-server, which cannot use a key in the HSM.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issued = await ca.issueTlsServerCertificate(publicKey.export({ type: 'spki', format: 'der' }), { dnsNames: o.hostnames, ipAddresses: o.ips, clusterRoute: true, actor: o.actor });
  await writeFile(local('server-key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
  await writeFile(local('server-cert.pem'), issued.chainPem, { mode: 0o644 });
  await writeFile(local('ca.pem'), issued.rootPem, { mode: 0o644 });

  const accounts = [
    '# Written by keyhub-server nats-config: operator, system account and the Keyhub account.',
    `operator: ${q(await authority.operatorJwt())}`,
    `system_account: ${q(authority.systemAccountKey)}`,
    'resolver_preload: {',
    `  ${authority.systemAccountKey}: ${q(await authority.systemAccountJwt())}`,
    `  ${authority.accountKey}: ${q(o.accountJwt)}`,
    '}',
    '',
  ].join('\n');
  const tlsBlock = (verify: boolean): string =>
    ['tls {', `  cert_file: ${q(at('server-cert.pem'))}`, `  key_file: ${q(at('server-key.pem'))}`, `  ca_file: ${q(at('ca.pem'))}`, `  verify: ${verify}`, '  timeout: 5', '}', ''].join('\n');
  await writeFile(local('accounts.conf'), accounts, { mode: 0o644 });
  await writeFile(local('tls.conf'), tlsBlock(false), { mode: 0o644 });
  await writeFile(local('cluster-tls.conf'), tlsBlock(true), { mode: 0o644 });
  return {
    accounts: local('accounts.conf'),
    tls: local('tls.conf'),
    clusterTls: local('cluster-tls.conf'),
    caFile: local('ca.pem'),
    certFile: local('server-cert.pem'),
    keyFile: local('server-key.pem'),
  };
}

/** The resolver block of one node: its own directory, never deleting, syncing with its peers. */
export function resolverBlock(dir: string): string {
  return ['resolver: {', '  type: full', `  dir: ${q(dir)}`, '  allow_delete: false', '  interval: "2m"', '  timeout: "5s"', '}', ''].join('\n');
}
