import { generateKeyPairSync } from 'node:crypto';
import { open, readFile, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { api } from '@keyhub/protocol';
import { printPending } from '../approval-output';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine } from '../output';

/** Owner-only, and never over an existing file: a private key must not land in a file someone else prepared. */
async function openKeyFile(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'wx', 0o600);
  } catch (err) {
    throw new CliError('INPUT_INVALID', `cannot create ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}; it must not exist yet)`);
  }
}

function days(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,3}$/.test(value) || Number(value) < 1) throw new CliError('INPUT_INVALID', '--days is a whole number of days (1 to 397)');
  return Number(value);
}

function serialPath(serial: string): string {
  if (!/^[0-9a-fA-F:]{2,96}$/.test(serial)) throw new CliError('INPUT_INVALID', 'a certificate serial is hex digits (colons allowed)');
  return encodeURIComponent(serial);
}

export function registerCertificateCommands(program: Command): void {
  const cert = program.command('cert').description('client certificates (mTLS) from the hub CA, for KEYHUB_CLIENT_CERT and KEYHUB_CLIENT_KEY');

  cert
    .command('request')
    .description('make a key pair here (EC P-256; the private key never leaves this machine) and get a certificate for it from the hub CA')
    .option('--operator <name>', 'for another operator (admins; dual control under operator.manage)')
    .option('--days <n>', 'validity in days (default: the hub CA default, 90)')
    .option('--key-out <file>', 'where to write the new private key (PKCS#8 PEM, mode 0600, must not exist)')
    .option('--public-key <file>', 'certify this public key (PEM) instead of making a key pair here')
    .option('--cert-out <file>', 'where to write the certificate and its issuing CA (PEM chain)')
    .action(async (opts: { operator?: string; days?: string; keyOut?: string; publicKey?: string; certOut?: string }, cmd: Command) => {
      const g = globals(cmd);
      if ((opts.keyOut === undefined) === (opts.publicKey === undefined))
        throw new CliError('INPUT_INVALID', 'give --key-out (a new key pair made here) or --public-key (a key you made), one of them');
      const validityDays = days(opts.days);
      const hub = await client();
      const name = opts.operator ?? (await hub.get('/v1/auth/whoami', api.whoami)).operator.name;
      let publicKeyPem: string;
      let privateKeyPem: string | undefined;
      if (opts.publicKey !== undefined) {
        publicKeyPem = await readFile(opts.publicKey, 'utf8').catch(() => {
          throw new CliError('INPUT_INVALID', `cannot read ${opts.publicKey}`);
        });
      } else {
        const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        publicKeyPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
        privateKeyPem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      }
      const send = () => hub.call('POST', `/v1/operators/${encodeURIComponent(name)}/certificates`, { 201: api.issuedCertificate, 202: api.approvalPending }, { publicKeyPem, validityDays });
      const keyFile = opts.keyOut !== undefined ? await openKeyFile(opts.keyOut) : undefined;
      let r: Awaited<ReturnType<typeof send>>;
      try {
        r = await send();
        if (keyFile && privateKeyPem) {
          await keyFile.writeFile(privateKeyPem);
          await keyFile.sync();
        }
      } catch (err) {
        await keyFile?.close();
        if (opts.keyOut !== undefined) await unlink(opts.keyOut).catch(() => undefined);
        throw err;
      }
      await keyFile?.close();
      if (r.status === 202) {
        if (g.json) return printJson({ ...r.body, operator: name, keyFile: opts.keyOut ?? null });
        printPending(r.body.approval);
        return printLine(`Once approved, the request's result names the serial: keyhub cert show <serial> --cert-out <file>${opts.keyOut ? ` (the key is in ${opts.keyOut})` : ''}`);
      }
      if (opts.certOut !== undefined) await writeFile(opts.certOut, r.body.chainPem, { mode: 0o644 });
      if (g.json) return printJson({ operator: name, serial: r.body.serial, notAfter: r.body.notAfter, certificateFile: opts.certOut ?? null, keyFile: opts.keyOut ?? null });
      printFields([
        ['operator', name],
        ['serial', r.body.serial],
        ['expires', r.body.notAfter],
        ['certificate', opts.certOut ?? '(not written: give --cert-out)'],
        ['private key', opts.keyOut ?? `(yours, for ${opts.publicKey})`],
      ]);
      if (opts.certOut && opts.keyOut) printLine(`Use it: KEYHUB_CLIENT_CERT=${opts.certOut} KEYHUB_CLIENT_KEY=${opts.keyOut} (with KEYHUB_TOKEN unset)`);
    });

  cert
    .command('show')
    .description('a client certificate by serial (your own, or any as admin or auditor)')
    .argument('<serial>', 'certificate serial (hex)')
    .option('--cert-out <file>', 'also write the certificate (PEM) to this file')
    .action(async (serial: string, opts: { certOut?: string }, cmd: Command) => {
      const g = globals(cmd);
      const c = await (await client()).get(`/v1/certificates/${serialPath(serial)}`, api.certificateView);
      if (opts.certOut !== undefined) await writeFile(opts.certOut, c.certificatePem, { mode: 0o644 });
      if (g.json) return printJson(c);
      printFields([
        ['serial', c.serial],
        ['operator', c.operator],
        ['valid', `${c.notBefore} to ${c.notAfter}`],
        ['revoked', c.revokedAt],
      ]);
      if (opts.certOut === undefined) printLine(c.certificatePem.trimEnd());
    });

  cert
    .command('revoke')
    .description('revoke a client certificate at once (your own, or any as admin)')
    .argument('<serial>', 'certificate serial (hex)')
    .addOption(new Option('--reason <reason>', 'RFC 5280 reason').choices(api.CERTIFICATE_REVOCATION_REASONS))
    .action(async (serial: string, opts: { reason?: api.CertificateRevocationReason }, cmd: Command) => {
      const g = globals(cmd);
      const r = await (await client()).post(`/v1/certificates/${serialPath(serial)}/revoke${opts.reason ? `?reason=${opts.reason}` : ''}`, api.certificateRevoked);
      if (g.json) return printJson(r);
      printLine(r.revoked ? `certificate ${r.serial} revoked` : `certificate ${r.serial} was already revoked (${r.revokedAt})`);
    });
}
