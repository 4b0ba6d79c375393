import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Synchronous last-resort cleanups, run when the test process exits without the
 * tests having tidied up themselves (failed `after` hook, process.exit from the
 * runner, Ctrl-C). Only synchronous work is possible inside an 'exit' handler.
 */
const exitCleanups = new Set<() => void>();
let exitHooksInstalled = false;

function runExitCleanups(): void {
  for (const fn of [...exitCleanups].reverse()) {
    exitCleanups.delete(fn);
    try {
      fn();
    } catch {
      // Best effort: one broken cleanup must not prevent the others.
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', runExitCleanups);
  // Node's default for these signals skips 'exit' handlers, which would leave
  // nats-server processes and temp dirs behind.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      runExitCleanups();
      process.exit(code);
    });
  }
}

/** Registers a synchronous cleanup for process exit; returns an unregister function. */
export function onProcessExit(fn: () => void): () => void {
  installExitHooks();
  exitCleanups.add(fn);
  return () => {
    exitCleanups.delete(fn);
  };
}

export interface TempDir {
  path: string;
  /** Removes the directory tree; safe to call more than once. */
  remove(): Promise<void>;
}

/** Creates a fresh directory under os.tmpdir() named keyhub-<label>-XXXXXX, removed at exit if forgotten. */
export async function makeTempDir(label = 'tmp'): Promise<TempDir> {
  const safeLabel = label.replace(/[^A-Za-z0-9_.-]/g, '_');
  const dir = await mkdtemp(path.join(os.tmpdir(), `keyhub-${safeLabel}-`));
  const unregister = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  return {
    path: dir,
    async remove(): Promise<void> {
      unregister();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function listenOnLoopback(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve(server));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Returns `count` distinct TCP ports that were free on 127.0.0.1 a moment ago.
 * All sockets are held open until every port is picked so the kernel cannot
 * hand out the same port twice; another process may still grab one before the
 * caller binds it, which is an accepted risk for tests.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnLoopback());
    return servers.map((s) => {
      const addr = s.address();
      if (addr === null || typeof addr === 'string') throw new Error('unexpected listener address');
      return addr.port;
    });
  } finally {
    await Promise.all(servers.map(closeServer));
  }
}

/** A single free TCP port on 127.0.0.1 (see freePorts for the caveat). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
