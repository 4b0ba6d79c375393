import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export interface TestDatabase {
  /** Connection URL for the new database (same credentials as the admin URL). */
  url: string;
  name: string;
  /** Terminates leftover sessions and drops the database; safe to call twice. */
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

/** Creates an empty database named <prefix>_<random> owned by the admin URL's role. */
export async function createTestDatabase(prefix = 'keyhub_test'): Promise<TestDatabase> {
  // Identifiers are interpolated into DDL (no bind parameters there), so only
  // allow plain lowercase names; 63 bytes is PostgreSQL's identifier limit.
  if (!/^[a-z_][a-z0-9_]*$/.test(prefix) || prefix.length > 46) {
    throw new Error(`invalid database prefix ${JSON.stringify(prefix)}`);
  }
  const name = `${prefix}_${randomBytes(8).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`));

  const url = new URL(adminDatabaseUrl());
  url.pathname = `/${name}`;

  let dropped = false;
  return {
    url: url.toString(),
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
