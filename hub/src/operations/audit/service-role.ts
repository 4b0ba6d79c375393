import type { DataSource } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import type { HubConfig } from '../../config';
import { redactUrl } from '../../store/data-source';
import { APPEND_ONLY_TABLES, applyServiceGrants, auditRewriteRights, roleFacts, schemaRelations } from '../../store/queries/audit-grants';

/** The role `keyhub serve` connects as: the user name in `databaseUrl`. */
export function serviceRoleName(config: Pick<HubConfig, 'databaseUrl'>): string {
  let user = '';
  try {
    user = decodeURIComponent(new URL(config.databaseUrl).username);
  } catch {
    // Reported below: a URL without a user cannot name the service role.
  }
  if (!user) throw new KeyhubError('CONFIG_INVALID', `databaseUrl (${redactUrl(config.databaseUrl)}) names no user: the service role must be explicit`);
  return user;
}

export interface ServiceGrants {
  role: string;
  tables: number;
  appendOnly: readonly string[];
}

/**
 * Gives the service role what `keyhub serve` needs and nothing more, as the
 * owner, after every migration run (`init`, `migrate`). Rules: the audit
 * tables are INSERT and SELECT only, the hub identity and the migration
 * history SELECT only, every other table SELECT, INSERT, UPDATE, DELETE; no
 * TRUNCATE, TRIGGER or REFERENCES; the role owns nothing, so ALTER, DROP
 * and DISABLE TRIGGER are the owner's alone. A service role that is a
 * superuser, the owner, or a member of the owner is refused: grants would
 * mean nothing. Without `ownerDatabaseUrl` nothing is granted (one role for
 * everything, which `serve` then refuses).
 */
export async function grantServiceRole(ds: DataSource, config: Pick<HubConfig, 'databaseUrl' | 'ownerDatabaseUrl'>): Promise<ServiceGrants | undefined> {
  if (config.ownerDatabaseUrl === undefined) return undefined;
  const role = serviceRoleName(config);
  return ds.transaction(async (m) => {
    const facts = await roleFacts(m, role);
    if (!facts.exists) throw new KeyhubError('CONFIG_INVALID', `the service role ${role} (databaseUrl) does not exist: create it first (CREATE ROLE ... LOGIN PASSWORD ..., no other rights)`);
    if (facts.superuser) throw new KeyhubError('CONFIG_INVALID', `the service role ${role} is a superuser: it could rewrite the audit trail whatever is granted`);
    if (facts.memberOfCurrent) throw new KeyhubError('CONFIG_INVALID', `the service role ${role} is the owner role or a member of it: give the service a role of its own`);
    const { schema, tables } = await schemaRelations(m);
    await applyServiceGrants(m, role, schema, tables);
    return { role, tables: tables.length, appendOnly: APPEND_ONLY_TABLES };
  });
}

/**
 * Fail closed at `serve`: if the role the service connected as could
 * change or remove audit rows (privileges beyond INSERT and SELECT,
 * ownership, superuser), the hub does not start.
 */
export async function assertAuditAppendOnly(ds: DataSource): Promise<void> {
  const rights = await auditRewriteRights(ds);
  if (rights.length) {
    throw new KeyhubError(
      'CONFIG_INVALID',
      `the service's database role can rewrite the audit trail (${rights.slice(0, 6).join(', ')}): connect \`serve\` as the service role (databaseUrl) and run init/migrate as the owner (ownerDatabaseUrl)`,
    );
  }
}
