import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export interface TestDatabase {
  /** Connection URL for the new database with the admin URL's credentials: the owner role, which runs migrations. */
  url: string;
  /**
   * The same database as a role of its own with no rights yet: what the
   * hub's service connects as (`databaseUrl`); `keyhub-server init` grants it
   * what it may do (on the audit tables: INSERT and SELECT only).
   */
  serviceUrl: string;
  serviceRole: string;
  name: string;
  /** Terminates leftover sessions, drops the database and the service role; safe to call twice. */
  drop(): Promise<void>;
}

/** SQLSTATE 55006: database is being accessed by other users. */
const OBJECT_IN_USE = '55006';

const DEFAULT_ADMIN_URL = 'postgres://keyhub:keyhub@127.0.0.1:5432/postgres';

/** The maintenance-database URL used to create and drop test databases. */
export function adminDatabaseUrl(): string {
  const fromEnv = process.env.DATABASE_URL;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_ADMIN_URL;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

async function withAdmin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const adminUrl = adminDatabaseUrl();
  const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot connect to PostgreSQL at ${redact(adminUrl)}: ${msg} (run test/scripts/prepare.sh or set DATABASE_URL)`, { cause: err });
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** SQLSTATE 42501: the admin role may not create roles. */
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * Creates an empty database named <prefix>_<random> owned by the admin URL's
 * role, and a login role `keyhub_svc_<random>` (no other attributes) for the
 * hub's service. The admin role needs CREATEDB and CREATEROLE
 * (test/scripts/prepare.sh gives the local `keyhub` role both).
 */
export async function createTestDatabase(prefix = 'keyhub_test'): Promise<TestDatabase> {
  // Identifiers are interpolated into DDL (no bind parameters there), so only
  // allow plain lowercase names; 63 bytes is PostgreSQL's identifier limit.
  if (!/^[a-z_][a-z0-9_]*$/.test(prefix) || prefix.length > 46) {
    throw new Error(`invalid database prefix ${JSON.stringify(prefix)}`);
  }
  const name = `${prefix}_${randomBytes(8).toString('hex')}`;
  const serviceRole = `keyhub_svc_${name.slice(-16)}`;
  const servicePassword = randomBytes(18).toString('hex');
  await withAdmin(async (c) => {
    await c.query(`CREATE DATABASE ${quoteIdent(name)}`);
    try {
      // The password is hex, so it can sit in the statement (CREATE ROLE takes no bind parameters).
      await c.query(`CREATE ROLE ${quoteIdent(serviceRole)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD '${servicePassword}'`);
    } catch (err) {
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`).catch(() => undefined);
      if ((err as { code?: unknown }).code === INSUFFICIENT_PRIVILEGE) {
        throw new Error(`the PostgreSQL role of ${redact(adminDatabaseUrl())} may not create roles: run test/scripts/prepare.sh, or use a DATABASE_URL whose role has CREATEDB and CREATEROLE`, {
          cause: err,
        });
      }
      throw err;
    }
  });

  const url = new URL(adminDatabaseUrl());
  url.pathname = `/${name}`;
  const serviceUrl = new URL(url.toString());
  serviceUrl.username = serviceRole;
  serviceUrl.password = servicePassword;

  let dropped = false;
  return {
    url: url.toString(),
    serviceUrl: serviceUrl.toString(),
    serviceRole,
    name,
    async drop(): Promise<void> {
      if (dropped) return;
      await withAdmin(async (c) => {
        // A pooled client from the code under test may still be connected (or
        // reconnect right after being terminated), and DROP DATABASE refuses to
        // run while any session uses the database, hence terminate-and-retry.
        for (let attempt = 1; ; attempt++) {
          await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
          try {
            await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
            // Its privileges lived in the dropped database only, so nothing else holds the role.
            await c.query(`DROP ROLE IF EXISTS ${quoteIdent(serviceRole)}`);
            return;
          } catch (err) {
            const inUse = (err as { code?: unknown }).code === OBJECT_IN_USE;
            if (!inUse || attempt >= 5) throw err;
            await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
          }
        }
      });
      dropped = true;
    },
  };
}

/** True if a database with this name exists (used to verify drop()). */
export async function databaseExists(name: string): Promise<boolean> {
  return withAdmin(async (c) => {
    const res = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return (res.rowCount ?? 0) > 0;
  });
}
