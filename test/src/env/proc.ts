import { execFile } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/**
 * Runs a command without a shell and resolves with its exit code instead of
 * rejecting, because callers (e.g. pkcs11-tool checks) often expect non-zero codes.
 * Spawn failures such as ENOENT still reject: they mean the environment is broken.
 */
export function run(file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string; cwd?: string } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'number') {
          resolve({ stdout, stderr, code });
        } else if (typeof code === 'string') {
          reject(new Error(`cannot run ${file}: ${err.message}`));
        } else {
          const why = err.killed ? 'timed out' : `died from ${String(err.signal)}`;
          reject(new Error(`${file} ${why}\n${stderr}`));
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds an executable: an explicit override (env var) wins and must exist, then
 * PATH, then fixed fallbacks (sbin dirs are missing from a normal user's PATH).
 */
export function findExecutable(name: string, envVar: string | undefined, fallbacks: readonly string[]): string {
  const override = envVar === undefined ? undefined : process.env[envVar];
  if (override !== undefined && override !== '') {
    if (!isExecutable(override)) throw new Error(`${envVar}=${override} is not an executable file`);
    return override;
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  for (const candidate of fallbacks) {
    if (isExecutable(candidate)) return candidate;
  }
  const hint = envVar === undefined ? '' : ` or set ${envVar}`;
  throw new Error(`${name} not found in PATH or ${fallbacks.join(', ')}; run test/scripts/prepare.sh${hint}`);
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface HttpJsonResponse {
  status: number;
  body: unknown;
}

/** Minimal GET for the nats-server monitoring endpoints; resolves null on any transport error. */
export function httpGetJson(url: string, timeoutMs = 2000): Promise<HttpJsonResponse | null> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Non-JSON bodies are still useful in error messages.
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
