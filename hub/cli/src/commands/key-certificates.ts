import { readFile, writeFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { api } from '@keyhub/protocol';
import { client, globals } from '../context';
import type { HubClient } from '../client';
import { CliError } from '../errors';
import { printFields, printJson, printLine } from '../output';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

interface SubjectOptions {
  cn?: string;
  o?: string;
  ou?: string;
}

function subject(opts: SubjectOptions): { commonName?: string; organization?: string; organizationalUnit?: string } {
  return { ...(opts.cn ? { commonName: opts.cn } : {}), ...(opts.o ? { organization: opts.o } : {}), ...(opts.ou ? { organizationalUnit: opts.ou } : {}) };
}

/** `/v1/keys/<name>/versions/<n>`: the version given, else the key's current one. */
async function versionPath(hub: HubClient, name: string, version: number | undefined): Promise<string> {
  const key = encodeURIComponent(name);
  const n = version ?? (await hub.get(`/v1/keys/${key}`, api.keyDetail)).key.currentVersion;
  return `/v1/keys/${key}/versions/${n}`;
}

function printCertificate(c: api.KeyCertificateView, out: string | undefined): void {
  printFields([
    ['key', c.key],
    ['version', c.version],
    ['source', c.source === 'hub-ca' ? 'hub key-issuing CA' : 'imported (outside CA)'],
    ['serial', c.serial],
    ['subject', c.subject],
    ['issuer', c.issuer],
    ['valid', `${c.notBefore} to ${c.notAfter}`],
    ['certificates', c.certificates],
    ['chain', out ?? '(below)'],
  ]);
  if (out === undefined) printLine(c.chainPem.trimEnd());
}

/** `keyhub key certificate` and `keyhub key csr`: certificate chains of key pair versions, for keystores (issue 12). */
export function registerKeyCertificateCommands(key: Command): void {
  key
    .command('certificate')
    .description("a key pair version's certificate chain: issued by the hub key-issuing CA when it has none (idempotent), shown, or imported from an outside CA")
    .argument('<name>', 'key name')
    .option('--version <n>', 'key version (default: the current one)', positiveInt)
    .option('--cn <name>', 'subject CN of a new certificate (default: the key name)')
    .option('--o <org>', 'subject O of a new certificate')
    .option('--ou <unit>', 'subject OU of a new certificate')
    .option('--days <n>', 'validity of a new certificate in days (default: the hub CA default, 365)', positiveInt)
    .option('--import <file>', "store this PEM chain from an outside CA instead (leaf first; its public key must be the version's)")
    .option('--show', 'only show the existing chain, never issue')
    .option('--out <file>', 'write the chain (PEM, leaf first) to this file')
    .action(async (name: string, opts: SubjectOptions & { version?: number; days?: number; import?: string; show?: boolean; out?: string }, cmd: Command) => {
      const g = globals(cmd);
      if (opts.import !== undefined && opts.show) throw new CliError('INPUT_INVALID', 'give --import or --show, not both');
      const hub = await client();
      const path = `${await versionPath(hub, name, opts.version)}/certificate`;
      let c: api.KeyCertificateView;
      if (opts.import !== undefined) {
        const chainPem = await readFile(opts.import, 'utf8').catch(() => {
          throw new CliError('INPUT_INVALID', `cannot read ${opts.import}`);
        });
        c = (await hub.call('PUT', path, { 200: api.keyCertificateView }, { chainPem })).body;
      } else if (opts.show) {
        c = await hub.get(path, api.keyCertificateView);
      } else {
        c = (await hub.call('POST', path, { 200: api.keyCertificateView, 201: api.keyCertificateView }, { ...subject(opts), ...(opts.days ? { validityDays: opts.days } : {}) })).body;
      }
      if (opts.out !== undefined) await writeFile(opts.out, c.chainPem, { mode: 0o644 });
      if (g.json) return printJson({ ...c, chainFile: opts.out ?? null });
      printCertificate(c, opts.out);
    });

  key
    .command('csr')
    .description('a PKCS#10 request for a key pair version, signed in the hub HSM by its private key, for an outside CA (bring the chain back with `key certificate --import`)')
    .argument('<name>', 'key name')
    .requiredOption('--cn <name>', 'subject CN')
    .option('--o <org>', 'subject O')
    .option('--ou <unit>', 'subject OU')
    .option('--version <n>', 'key version (default: the current one)', positiveInt)
    .option('--out <file>', 'write the request (PEM) to this file')
    .action(async (name: string, opts: SubjectOptions & { version?: number; out?: string }, cmd: Command) => {
      const g = globals(cmd);
      const hub = await client();
      const r = await hub.post(`${await versionPath(hub, name, opts.version)}/csr`, api.keyCsrView, subject(opts));
      if (opts.out !== undefined) await writeFile(opts.out, r.csrPem, { mode: 0o644 });
      if (g.json) return printJson({ ...r, csrFile: opts.out ?? null });
      printFields([
        ['key', r.key],
        ['version', r.version],
        ['subject', r.subject],
        ['signature', `${r.signatureAlgorithm}, in the hub HSM`],
        ['request', opts.out ?? '(below)'],
      ]);
      if (opts.out === undefined) printLine(r.csrPem.trimEnd());
    });
}
