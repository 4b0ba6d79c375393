import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import { nkeys } from 'nats';
import { LISTENER_ID_PATTERN } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../audit/audit-log';
import { NatsAuthority } from '../nats/nats-authority';
import { formatCreds } from '../nats/nats-jwt';
import type { UserPermissions } from '../nats/nats-jwt';
import { hubPermissions, listenerPermissions } from '../nats/permissions';
import { printFields, printJson } from './output';
import { adminOptions, withRuntime } from './runtime';

/** Everything in the Keyhub account: for troubleshooting with the `nats` CLI, short-lived, audited. */
const ADMIN: UserPermissions = { pub: { allow: ['>'] }, sub: { allow: ['>'] } };

/**
 * `keyhub-server nats-creds`: a `.creds` file for a NATS user of the Keyhub
 * account, beside the HSM (the account key signs). For inspection tools and
 * tests; the hub itself never needs one (it makes its own at every start).
 * Every issuance is an audit event; the file is written 0600.
 */
export function registerNatsCredsCommand(program: Command): void {
  program
    .command('nats-creds')
    .description('issue a NATS credential (.creds) of the Keyhub account: --as admin (everything, for troubleshooting), hub, or listener:<id>')
    .requiredOption('--as <who>', 'admin | hub | listener:<id>')
    .requiredOption('--out <file>', 'where to write it (mode 0600, must not exist)')
    .option('--ttl <seconds>', 'lifetime in seconds', '3600')
    .action(async (opts: { as: string; out: string; ttl: string }, cmd: Command) => {
      const o = adminOptions(cmd);
      const ttl = Number(opts.ttl);
      if (!Number.isInteger(ttl) || ttl < 60 || ttl > 30 * 86_400) throw new KeyhubError('INPUT_INVALID', '--ttl: 60 to 2592000 seconds');
      let permissions: UserPermissions;
      const m = /^listener:(.+)$/.exec(opts.as);
      if (opts.as === 'admin') permissions = ADMIN;
      else if (opts.as === 'hub') permissions = hubPermissions();
      else if (m && LISTENER_ID_PATTERN.test(m[1])) permissions = listenerPermissions(m[1]);
      else throw new KeyhubError('INPUT_INVALID', '--as: admin, hub or listener:<id>');
      const file = await open(opts.out, 'wx', 0o600).catch((err: unknown) => {
        throw new KeyhubError('CONFIG_INVALID', `cannot create ${opts.out} (it must not exist yet)`, { cause: err });
      });
      try {
        const result = await withRuntime(o, async (rt) => {
          const authority = await NatsAuthority.load(rt.hsm);
          const user = nkeys.createUser();
          const expiresAt = new Date(Date.now() + ttl * 1000);
          const jwt = await authority.issueUser({ userKey: user.getPublicKey(), name: `${opts.as}-cli`, permissions, expiresAt });
          await rt.ds.transaction((tx) =>
            appendAudit(tx, [
              { actor: 'system:nats-creds', action: 'nats.credential_issued', subject: `nats:${opts.as}`, details: { userKey: user.getPublicKey(), expiresAt: expiresAt.toISOString() } },
            ]),
          );
          await file.writeFile(formatCreds(jwt, new TextDecoder().decode(user.getSeed())));
          return { as: opts.as, userKey: user.getPublicKey(), expiresAt: expiresAt.toISOString(), file: opts.out };
        });
        if (o.json) return printJson(result);
        printFields(Object.entries(result));
      } finally {
        await file.close();
      }
    });
}
