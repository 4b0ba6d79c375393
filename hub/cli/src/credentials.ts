import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { api } from '@keyhub/protocol';
import { CliError } from './errors';

/*
 * Where the client finds the hub and its credential, as `vault` and `nats`
 * users expect: KEYHUB_ADDR, KEYHUB_CACERT and KEYHUB_TOKEN in the
 * environment, or what `keyhub login` stored under ~/.keyhub (directory
 * 0700, files 0600). The environment wins.
 */

export interface Credentials {
  addr: string;
  caPem: string;
  token?: string;
  clientCert?: { cert: string; key: string };
}

export function configDir(): string {
  return process.env.KEYHUB_CLI_HOME ?? path.join(homedir(), '.keyhub');
}

const files = {
  hubFingerprint: () => path.join(configDir(), 'hub-fingerprint'),
  token: () => path.join(configDir(), 'token'),
  addr: () => path.join(configDir(), 'addr'),
  ca: () => path.join(configDir(), 'ca.pem'),
};

async function readIfPresent(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A token file anyone else can read is a leaked token: refuse it rather than use it. */
async function readOwnerOnly(file: string): Promise<string | undefined> {
  let s;
  try {
    s = await stat(file);
  } catch {
    return undefined;
  }
  if ((s.mode & 0o077) !== 0) throw new CliError('CONFIG_INVALID', `${file} is readable by others (mode ${(s.mode & 0o777).toString(8)}); chmod 600 it`);
  return readIfPresent(file);
}

export async function loadCredentials(options: { needToken: boolean }): Promise<Credentials> {
  const addr = process.env.KEYHUB_ADDR ?? (await readIfPresent(files.addr()));
  if (!addr) throw new CliError('CONFIG_INVALID', 'no hub address: set KEYHUB_ADDR (https://host:port) or run `keyhub login`');
  if (!addr.startsWith('https://')) throw new CliError('CONFIG_INVALID', 'KEYHUB_ADDR must be an https:// URL: the API is served over TLS only');
  const caFile = process.env.KEYHUB_CACERT;
  const caPem = caFile ? await readIfPresent(caFile) : await readIfPresent(files.ca());
  if (!caPem) throw new CliError('CONFIG_INVALID', caFile ? `cannot read KEYHUB_CACERT ${caFile}` : 'no hub CA certificate: set KEYHUB_CACERT or run `keyhub login --ca-cert <file>`');
  const certFile = process.env.KEYHUB_CLIENT_CERT || undefined;
  const keyFile = process.env.KEYHUB_CLIENT_KEY || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new CliError('CONFIG_INVALID', 'KEYHUB_CLIENT_CERT and KEYHUB_CLIENT_KEY go together');
  let clientCert: Credentials['clientCert'];
  if (certFile && keyFile) {
    const cert = await readIfPresent(certFile);
    const key = await readOwnerOnly(keyFile);
    if (!cert || !key) throw new CliError('CONFIG_INVALID', `cannot read ${!cert ? `KEYHUB_CLIENT_CERT ${certFile}` : `KEYHUB_CLIENT_KEY ${keyFile}`}`);
    clientCert = { cert: `${cert}\n`, key: `${key}\n` };
  }
  // A token given in the environment wins; with a client certificate and none, the token stored by `keyhub login` is not sent.
  const envToken = process.env.KEYHUB_TOKEN ?? (process.env.KEYHUB_TOKEN_FILE ? await readOwnerOnly(process.env.KEYHUB_TOKEN_FILE) : undefined);
  const token = envToken ?? (clientCert ? undefined : await readOwnerOnly(files.token()));
  if (options.needToken && !token && !clientCert) throw new CliError('AUTH_MISSING', 'not logged in: set KEYHUB_TOKEN or run `keyhub login`');
  if (token !== undefined && !api.parseApiToken(token)) throw new CliError('AUTH_INVALID', 'the token is malformed (expected khub_<id>_<secret>)');
  return { addr: addr.replace(/\/+$/, ''), caPem, token, clientCert };
}

/** Writes a file readable by its owner only, creating ~/.keyhub with mode 0700. */
export async function writePrivate(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, content, { mode: 0o600 });
  // writeFile keeps the mode of a file that already existed.
  await chmod(file, 0o600);
}

/** The hub signing key fingerprint pinned at login (compared out of band then), if any. */
export async function pinnedHubFingerprint(): Promise<string | undefined> {
  return (process.env.KEYHUB_HUB_FINGERPRINT || undefined) ?? (await readIfPresent(files.hubFingerprint()));
}

export async function storeHubFingerprint(fingerprint: string): Promise<void> {
  await writePrivate(files.hubFingerprint(), `${fingerprint}\n`);
}

export async function storeLogin(addr: string, caPem: string, token: string): Promise<string> {
  await writePrivate(files.addr(), `${addr}\n`);
  await writePrivate(files.ca(), caPem.endsWith('\n') ? caPem : `${caPem}\n`);
  await writePrivate(files.token(), `${token}\n`);
  return configDir();
}

export const loginFiles = files;
