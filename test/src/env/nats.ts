import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { canConnect, findExecutable, httpGetJson, isRecord } from './proc';
import { freePorts, makeTempDir, onProcessExit, sleep } from './tmp';

export interface NatsClusterNodeOptions {
  /** Cluster name, identical on every node. */
  name: string;
  /** Route listen port of this node on 127.0.0.1. */
  port: number;
  /** Route ports of the other nodes on 127.0.0.1. */
  routePorts: number[];
}

export interface StartNatsServerOptions {
  /** server_name; must be unique within a cluster. */
  name?: string;
  cluster?: NatsClusterNodeOptions;
  /** Fixed client port; a free random one by default. */
  port?: number;
  /** Fixed monitoring port; a free random one by default. */
  monitorPort?: number;
  /** Startup bound in ms (default 15000). */
  readyTimeoutMs?: number;
  /** The project's auth configuration (`keyhub-server nats-config`); a plain server without it. */
  auth?: NatsAuthFiles;
}

/** The fragments `keyhub-server nats-config` writes: operator and accounts, client TLS, route TLS. */
export interface NatsAuthFiles {
  accounts: string;
  tls: string;
  clusterTls: string;
}

export interface NatsServerHandle {
  readonly name: string;
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly monitorPort: number;
  /** http://127.0.0.1:<monitorPort> */
  readonly monitorUrl: string;
  /** Temp dir holding config, log and store; removed by cleanup(). */
  readonly dir: string;
  readonly storeDir: string;
  readonly configPath: string;
  readonly logPath: string;
  /** Pid of the most recently started process (it may have exited since). */
  readonly pid: number;
  readonly running: boolean;
  /** SIGTERM, then SIGKILL if still alive after 5 s. No-op when not running. */
  stop(): Promise<void>;
  /** SIGKILL, as in a crash; resolves once the process is gone. */
  kill9(): Promise<void>;
  /**
   * Stops (if running) and starts again with the same ports, config and store.
   * Waits until the client port accepts connections and JetStream is enabled;
   * for a standalone server also until /healthz is ok. A cluster node may need its peers for that, so
   * call waitHealthy() when the whole cluster is expected back.
   */
  restart(): Promise<void>;
  /** Resolves when /healthz reports ok (JetStream current, meta leader known). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  readLog(): Promise<string>;
  /** stop() and remove the temp dir. */
  cleanup(): Promise<void>;
}

export interface NatsClusterHandle {
  readonly urls: string[];
  readonly nodes: NatsServerHandle[];
  /** Resolves when every running node is healthy and agrees on a meta leader. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

const STOP_GRACE_MS = 5000;

export function natsServerBinary(): string {
  return findExecutable('nats-server', 'NATS_SERVER_BIN', ['/usr/sbin/nats-server', '/usr/local/bin/nats-server']);
}

function q(value: string): string {
  // JSON string syntax is valid quoted-string syntax in the NATS config format.
  return JSON.stringify(value);
}

function renderConfig(o: {
  name: string;
  port: number;
  monitorPort: number;
  storeDir: string;
  cluster?: NatsClusterNodeOptions;
  auth?: NatsAuthFiles;
  resolverDir: string;
  configDir: string;
}): string {
  // nats-server resolves an include relative to the including file, even an absolute path.
  const inc = (file: string): string => `include ${q(path.relative(o.configDir, file))}`;
  const lines = [`server_name: ${q(o.name)}`, `listen: ${q(`127.0.0.1:${o.port}`)}`, `http: ${q(`127.0.0.1:${o.monitorPort}`)}`, 'jetstream {', `  store_dir: ${q(o.storeDir)}`, '}'];
  if (o.auth !== undefined) {
    // The project's auth: operator, accounts and TLS from the hub; the resolver directory is this node's own.
    lines.push(inc(o.auth.accounts), 'resolver: {', '  type: full', `  dir: ${q(o.resolverDir)}`, '  allow_delete: false', '  interval: "2m"', '  timeout: "5s"', '}', inc(o.auth.tls));
  }
  if (o.cluster !== undefined) {
    lines.push(
      'cluster {',
      `  name: ${q(o.cluster.name)}`,
      `  listen: ${q(`127.0.0.1:${o.cluster.port}`)}`,
      '  routes: [',
      ...o.cluster.routePorts.map((p) => `    ${q(`nats-route://127.0.0.1:${p}`)}`),
      '  ]',
      ...(o.auth !== undefined ? [`  ${inc(o.auth.clusterTls)}`] : []),
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

interface RunningProcess {
  child: ChildProcess;
  exited: boolean;
  exitPromise: Promise<void>;
  exitDescription: string;
}

async function logTail(logPath: string, lines = 25): Promise<string> {
  try {
    const text = await readFile(logPath, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function healthzOk(monitorUrl: string, query = ''): Promise<{ ok: boolean; detail: string }> {
  const res = await httpGetJson(`${monitorUrl}/healthz${query === '' ? '' : `?${query}`}`);
  if (res === null) return { ok: false, detail: 'monitor endpoint not reachable' };
  const ok = res.status === 200 && isRecord(res.body) && res.body.status === 'ok';
  return { ok, detail: `HTTP ${res.status} ${JSON.stringify(res.body)}` };
}

export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  const name = opts.name ?? 'keyhub-nats';
  const [randomPort, randomMonitorPort] = await freePorts(2);
  const port = opts.port ?? randomPort;
  const monitorPort = opts.monitorPort ?? randomMonitorPort;
  const monitorUrl = `http://127.0.0.1:${monitorPort}`;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;

  const tmp = await makeTempDir(`nats-${name}`);
  const storeDir = path.join(tmp.path, 'store');
  const configPath = path.join(tmp.path, 'nats.conf');
  const logPath = path.join(tmp.path, 'nats.log');
  await mkdir(storeDir);
  await writeFile(configPath, renderConfig({ name, port, monitorPort, storeDir, cluster: opts.cluster, auth: opts.auth, resolverDir: path.join(tmp.path, 'jwt'), configDir: tmp.path }));

  let current: RunningProcess | undefined;
  let lastPid = 0;
  let removed = false;

  const spawnServer = (): RunningProcess => {
    // The server logs to stderr; a file fd (rather than a pipe) keeps logging
    // working even if this process stops reading, and survives for post-mortems.
    const logFd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(bin, ['-c', configPath], { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const proc: RunningProcess = {
      child,
      exited: false,
      exitDescription: '',
      exitPromise: Promise.resolve(),
    };
    let unregister: () => void = () => undefined;
    proc.exitPromise = new Promise<void>((resolve) => {
      const finish = (description: string): void => {
        if (proc.exited) return;
        proc.exited = true;
        proc.exitDescription = description;
        unregister();
        resolve();
      };
      child.once('exit', (code, signal) => finish(signal !== null ? `killed by ${signal}` : `exited with code ${code}`));
      child.once('error', (err) => finish(`failed to start: ${err.message}`));
    });
    if (child.pid !== undefined) {
      lastPid = child.pid;
      const pid = child.pid;
      unregister = onProcessExit(() => {
        if (!proc.exited) process.kill(pid, 'SIGKILL');
      });
    }
    return proc;
  };

  const waitUntil = async (proc: RunningProcess, timeoutMs: number, what: string, check: () => Promise<{ ok: boolean; detail: string }>): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exited) {
        throw new Error(`nats-server ${name} ${proc.exitDescription} while waiting for ${what}\n${await logTail(logPath)}`);
      }
      const r = await check();
      if (r.ok) return;
      if (Date.now() > deadline) {
        throw new Error(`nats-server ${name}: no ${what} after ${timeoutMs} ms (${r.detail})\n${await logTail(logPath)}`);
      }
      await sleep(100);
    }
  };

  // "Up" means clients can connect and JetStream is enabled; it deliberately
  // excludes cluster health, which a lone restarted node cannot reach.
  const waitUp = (proc: RunningProcess, timeoutMs: number): Promise<void> =>
    waitUntil(proc, timeoutMs, 'client listener with JetStream', async () => {
      if (!(await canConnect(port))) return { ok: false, detail: `127.0.0.1:${port} not accepting` };
      return healthzOk(monitorUrl, 'js-enabled-only=true');
    });

  const requireRunning = (): RunningProcess => {
    if (current === undefined || current.exited) throw new Error(`nats-server ${name} is not running`);
    return current;
  };

  const start = async (): Promise<void> => {
    if (removed) throw new Error(`nats-server ${name} was cleaned up`);
    const proc = spawnServer();
    current = proc;
    try {
      await waitUp(proc, readyTimeoutMs);
      if (opts.cluster === undefined) await waitUntil(proc, readyTimeoutMs, 'healthy /healthz', () => healthzOk(monitorUrl));
    } catch (err) {
      await terminate(proc, 'SIGKILL');
      throw err;
    }
  };

  const terminate = async (proc: RunningProcess | undefined, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    if (proc === undefined || proc.exited) return;
    proc.child.kill(signal);
    const escalate = setTimeout(() => {
      if (!proc.exited) proc.child.kill('SIGKILL');
    }, STOP_GRACE_MS);
    try {
      await proc.exitPromise;
    } finally {
      clearTimeout(escalate);
    }
  };

  const handle: NatsServerHandle = {
    name,
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorPort,
    monitorUrl,
    dir: tmp.path,
    storeDir,
    configPath,
    logPath,
    get pid(): number {
      return lastPid;
    },
    get running(): boolean {
      return current !== undefined && !current.exited;
    },
    stop: () => terminate(current, 'SIGTERM'),
    kill9: () => terminate(current, 'SIGKILL'),
    async restart(): Promise<void> {
      await terminate(current, 'SIGTERM');
      await start();
    },
    async waitHealthy(timeoutMs = 30_000): Promise<void> {
      await waitUntil(requireRunning(), timeoutMs, 'healthy /healthz', () => healthzOk(monitorUrl));
    },
    readLog: () => readFile(logPath, 'utf8'),
    async cleanup(): Promise<void> {
      removed = true;
      await terminate(current, 'SIGTERM');
      await tmp.remove();
    },
  };

  try {
    await start();
  } catch (err) {
    await tmp.remove();
    throw err;
  }
  return handle;
}

interface MetaClusterInfo {
  leader: string;
  size: number;
}

async function metaCluster(monitorUrl: string): Promise<MetaClusterInfo | null> {
  const res = await httpGetJson(`${monitorUrl}/jsz`);
  if (res === null || res.status !== 200 || !isRecord(res.body)) return null;
  const meta = res.body.meta_cluster;
  if (!isRecord(meta)) return null;
  const leader = typeof meta.leader === 'string' ? meta.leader : '';
  const size = typeof meta.cluster_size === 'number' ? meta.cluster_size : 0;
  return { leader, size };
}

/**
 * Starts a JetStream cluster of `size` nodes on loopback and waits until every
 * node reports healthy and all agree on one meta leader (bounded at ~30 s).
 */
export async function startNatsCluster(size = 3, opts: { readyTimeoutMs?: number; auth?: NatsAuthFiles } = {}): Promise<NatsClusterHandle> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`invalid cluster size ${size}`);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const ports = await freePorts(size * 3);
  const routePorts = ports.slice(2 * size);
  const clusterName = `keyhub-test-${process.pid}-${Date.now().toString(36)}`;

  const started = await Promise.allSettled(
    Array.from({ length: size }, (_, i) =>
      startNatsServer({
        name: `n${i + 1}`,
        port: ports[i],
        monitorPort: ports[size + i],
        readyTimeoutMs,
        auth: opts.auth,
        cluster: {
          name: clusterName,
          port: routePorts[i],
          routePorts: routePorts.filter((_, j) => j !== i),
        },
      }),
    ),
  );
  const nodes: NatsServerHandle[] = [];
  const failures: unknown[] = [];
  for (const r of started) {
    if (r.status === 'fulfilled') nodes.push(r.value);
    else failures.push(r.reason);
  }

  const cluster: NatsClusterHandle = {
    urls: nodes.map((n) => n.url),
    nodes,
    async waitHealthy(timeoutMs = readyTimeoutMs): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const live = nodes.filter((n) => n.running);
        const health = await Promise.all(live.map((n) => healthzOk(n.monitorUrl)));
        const metas = await Promise.all(live.map((n) => metaCluster(n.monitorUrl)));
        const leaders = new Set(metas.map((m) => m?.leader ?? ''));
        const agreed = leaders.size === 1 && !leaders.has('');
        if (live.length > 0 && agreed && health.every((h) => h.ok)) return;
        const detail = live.map((n, i) => `${n.name}: healthz ${health[i].detail}, meta leader ${JSON.stringify(metas[i]?.leader ?? null)}`).join('; ');
        if (Date.now() > deadline) {
          const logs = await Promise.all(live.map(async (n) => `--- ${n.name} ---\n${await logTail(n.logPath, 10)}`));
          throw new Error(`NATS cluster not healthy after ${timeoutMs} ms: ${detail}\n${logs.join('\n')}`);
        }
        await sleep(200);
      }
    },
    async stop(): Promise<void> {
      await Promise.all(nodes.map((n) => n.stop()));
    },
    async cleanup(): Promise<void> {
      await Promise.all(nodes.map((n) => n.cleanup()));
    },
  };

  try {
    if (failures.length > 0) throw failures[0];
    await cluster.waitHealthy();
  } catch (err) {
    await cluster.cleanup();
    throw err;
  }
  return cluster;
}
