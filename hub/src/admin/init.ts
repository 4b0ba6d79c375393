import { open, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import type { Command } from 'commander';
import type { DataSource } from 'typeorm';
import { api } from '@keyhub/protocol';
import { KeyhubError, type Hsm } from '@keyhub/shared';
import type { HubConfig } from '../config';
import { HubCa } from '../crypto/ca';
import { NatsAuthority } from '../nats/nats-authority';
import { initHub } from '../operations/hub/init-hub';
import { bootstrapAdmin } from '../operations/operators/bootstrap-admin';
import { grantServiceRole } from '../operations/audit/service-role';
import { SYSTEM_ACTORS } from '../domain/principal';
import { countOperators } from '../store/queries/operators';
import { adminOptions, withRuntime } from './runtime';
import { caKeyLabels, readExternalCa } from './ca-options';
import { printFields, printJson, printLine } from './output';

/**
 * Owner-only, and never over an existing file: a token must not land in a
 * file someone else prepared. Opened before the admin is created, so a path
 * that cannot be written stops init before a token exists that nobody holds.
 */
async function openSecretFile(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'wx', 0o600);
  } catch (err) {
    throw new KeyhubError('CONFIG_INVALID', `cannot create ${file} (it must not exist yet)`, { cause: err });
  }
}

/**
 * The hub's own CA (root and intermediates made in the token), or with
 * `ca.external` the two issuing key pairs only: their public keys go to the
 * external CA, and once its certificates are where the configuration says,
 * they are checked against the token's keys (a later init, or serve).
 */
async function initCa(hsm: Hsm, ds: DataSource, config: HubConfig): Promise<{ rootPem?: string; createdKeys: string[]; external?: { certified: boolean; publicKeys: Record<string, string> } }> {
  const labels = caKeyLabels(config);
  if (!config.ca.external) {
    const made = await HubCa.ensure(hsm, ds, SYSTEM_ACTORS.init, { labels });
    return { rootPem: made.ca.certificatePem('root'), createdKeys: made.createdKeys };
  }
  const keys = await HubCa.ensureIssuingKeys(hsm, { labels });
  const pems = await readExternalCa(config.ca.external, { allowAbsent: true });
  const ca = pems ? await HubCa.load(hsm, ds, { labels, external: pems }) : undefined;
  return { rootPem: ca?.rootPem, createdKeys: keys.createdKeys, external: { certified: ca !== undefined, publicKeys: keys.publicKeys } };
}

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description('set up the hub: master, signing and CA keys in the HSM, the database schema, the hub CA, and the first admin; safe to repeat')
    .option('--admin <name>', 'name of the first admin', 'admin')
    .option('--admin-token-file <file>', "where to write the first admin's token (mode 0600, must not exist)", 'keyhub-admin.token')
    .option('--ca-cert-out <file>', 'where to write the hub CA certificate (PEM) that clients and listeners pin', 'keyhub-ca.pem')
    .action(async (opts: { admin: string; adminTokenFile: string; caCertOut: string }, cmd: Command) => {
      const o = adminOptions(cmd);
      const admin = api.operatorName.safeParse(opts.admin);
      if (!admin.success) throw new KeyhubError('INPUT_INVALID', 'admin name: lower case a-z 0-9 . _ @ -');
      const result = await withRuntime(
        o,
        async (rt, config) => {
          const hub = await initHub(rt.hsm, rt.ds, SYSTEM_ACTORS.init);
          const ca = await initCa(rt.hsm, rt.ds, config);
          // The NATS operator, system and account keys (Ed25519, in the token): `keyhub-server nats-config` writes what the servers trust.
          const nats = await NatsAuthority.ensure(rt.hsm);
          const serviceRole = await grantServiceRole(rt.ds, config);
          if (ca.rootPem) await writeFile(opts.caCertOut, ca.rootPem, { mode: 0o644 });
          const tokenFile = (await countOperators(rt.ds)) === 0 ? await openSecretFile(opts.adminTokenFile) : undefined;
          let token: Awaited<ReturnType<typeof bootstrapAdmin>>;
          try {
            token = await rt.ds.transaction((m) => bootstrapAdmin(m, admin.data, config.api.tokenTtlSeconds));
            if (token && tokenFile) await tokenFile.writeFile(`${token.token}\n`);
            await tokenFile?.sync();
          } catch (err) {
            await tokenFile?.close();
            if (tokenFile) await unlink(opts.adminTokenFile).catch(() => undefined);
            throw err;
          }
          await tokenFile?.close();
          if (tokenFile && !token) await unlink(opts.adminTokenFile).catch(() => undefined);
          return {
            ...hub,
            createdKeys: [...hub.createdKeys, ...ca.createdKeys, ...nats.created],
            serviceRole: serviceRole?.role ?? null,
            caCertificate: ca.rootPem ? opts.caCertOut : null,
            ...(ca.external ? { externalCa: ca.external } : {}),
            admin: token ? { name: token.operator, tokenFile: opts.adminTokenFile, expiresAt: token.expiresAt } : null,
          };
        },
        { requireKeyring: false, databaseRole: 'owner' },
      );
      if (o.json) return printJson(result);
      printFields([
        ['hub fingerprint', result.fingerprint],
        ['created keys', result.createdKeys.length ? result.createdKeys.join(', ') : 'none (already present)'],
        ['migrations run', result.migrations.length ? result.migrations.join(', ') : 'none (up to date)'],
        ['service role', result.serviceRole ? `${result.serviceRole} (audit tables: INSERT and SELECT only)` : 'none: set ownerDatabaseUrl, `serve` refuses a role that can rewrite the audit trail'],
        ['hub CA certificate', result.caCertificate ?? 'none yet: the external CA has not certified the issuing keys (see below)'],
        ['first admin', result.admin ? `${result.admin.name}, token in ${result.admin.tokenFile} (expires ${result.admin.expiresAt})` : 'none (operators exist already)'],
      ]);
      if (result.externalCa && !result.externalCa.certified) {
        printLine('External CA: have it certify these two public keys as intermediate CAs (CA:TRUE, pathlen:0, keyCertSign, cRLSign),');
        printLine('put the certificates where ca.external names them, and run init again.');
        for (const [profile, pem] of Object.entries(result.externalCa.publicKeys)) printLine(`${profile}:\n${pem}`);
      }
      printLine('Listeners pin the hub fingerprint, and clients the CA certificate; hand both over out of band.');
    });

  program
    .command('migrate')
    .description('run pending database migrations (as the owner role)')
    .action(async (_opts: unknown, cmd: Command) => {
      const o = adminOptions(cmd);
      const { migrations, serviceRole } = await withRuntime(
        o,
        async (rt, config) => {
          const ran = (await rt.ds.runMigrations({ transaction: 'each' })).map((m) => m.name);
          return { migrations: ran, serviceRole: (await grantServiceRole(rt.ds, config))?.role ?? null };
        },
        { requireKeyring: false, databaseRole: 'owner' },
      );
      if (o.json) return printJson({ migrations, serviceRole });
      printLine(migrations.length ? `ran ${migrations.join(', ')}` : 'up to date');
    });
}
