import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from 'nats';
import {
  createSoftHsm,
  createTestDatabase,
  makeTempDir,
  onProcessExit,
  run,
  startNatsCluster,
  startNatsServer,
  type ExecResult,
  type NatsAuthFiles,
  type NatsClusterHandle,
  type NatsServerHandle,
  type SoftHsmEnv,
  type SoftHsmToken,
  type TempDir,
} from '../env';

const REPO = path.resolve(__dirname, '../../..');
/** The operators' client: talks only to the API, never gets a database URL or a PIN. */
export const HUB_CLI = path.join(REPO, 'hub/cli/dist/main.js');
/** The server's own entry point (init, serve, migrate), run beside the database and the HSM. */
export const HUB_SERVER = path.join(REPO, 'hub/dist/main.js');
export const LISTENER_CLI = path.join(REPO, 'listener/dist/cli/main.js');

/** A child process whose output is kept, with a way to wait for a line. */
export class ManagedProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;
  private readonly removeExitHook: () => void;

  constructor(
    file: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    readonly label: string,
  ) {
    this.child = spawn(process.execPath, [file, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (d: Buffer) => (this.output += d.toString('utf8')));
    this.child.stderr?.on('data', (d: Buffer) => (this.output += d.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.removeExitHook = onProcessExit(() => this.child.kill('SIGKILL'));
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (this.child.exitCode !== null) throw new Error(`${this.label} exited (${this.child.exitCode}) before printing ${pattern}:\n${this.output.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${this.label} did not print ${pattern} within ${timeoutMs} ms:\n${this.output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    this.removeExitHook();
  }
}

export interface ListenerSite {
  id: string;
  token: SoftHsmToken;
  home: string;
  env: NodeJS.ProcessEnv;
  process?: ManagedProcess;
}

/**
 * A complete Keyhub installation made of real parts: its own nats-server
 * with JetStream, SoftHSM2 tokens for the hub and each listener, a fresh
 * PostgreSQL database, and the real `keyhub` / `keyhub-listener` CLIs run
 * as separate processes. Used by the end-to-end tests and by the demo.
 */
export class Deployment {
  hub?: ManagedProcess;
  /** Further `keyhub serve` replicas beside `hub`. */
  readonly replicas: ManagedProcess[] = [];
  hubFingerprint = '';
  readonly listeners = new Map<string, ListenerSite>();
  /** The first hub's API address, once `startHub` has run. */
  apiAddr = '';
  /** Tokens by operator name: `admin` from init; `officer` (key-officer) and `auditor` made at the first start. */
  readonly tokens = new Map<string, string>();
  private readonly replicaAddrs: string[] = [];

  /** The only server, or the first node of the cluster (started in `create`, after the hub's NATS keys exist). */
  nats!: NatsServerHandle;
  natsUrls: string[] = [];
  natsCluster: NatsClusterHandle | undefined;
  /** The fragments `keyhub-server nats-config` wrote; undefined for a plain server (`plainNats`). */
  natsAuth?: NatsAuthFiles;
  private adminCreds?: string;

  private constructor(
    readonly dir: TempDir,
    readonly hsm: SoftHsmEnv,
    /** `url` is the owner role (migrations, and tests that play the attacker with owner rights); `serviceUrl` what `keyhub serve` connects as. */
    readonly db: { url: string; serviceUrl: string; serviceRole: string; name: string; drop(): Promise<void> },
    readonly hubConfigPath: string,
  ) {}

  /**
   * With the project's NATS auth and TLS unless `plainNats`: the hub is
   * initialized first (its NATS operator and account keys live in its HSM),
   * `keyhub-server nats-config` writes what the servers trust, then the
   * servers start with it.
   */
  static async create(listenerIds: string[], options: { delivery?: Record<string, number>; natsCluster?: boolean; plainNats?: boolean; checkpointEverySeconds?: number } = {}): Promise<Deployment> {
    const dir = await makeTempDir('deployment');
    const hsm = await createSoftHsm(['hub', ...listenerIds]);
    const db = await createTestDatabase();
    const hubConfigPath = path.join(dir.path, 'hub.json');
    await writeFile(
      hubConfigPath,
      JSON.stringify({
        databaseUrl: db.serviceUrl,
        ownerDatabaseUrl: db.url,
        nats: { servers: ['nats://127.0.0.1:4222'], replicas: options.natsCluster ? 3 : 1, ...(options.plainNats ? { auth: 'none', tls: false } : {}) },
        hsm: { module: hsm.modulePath, tokenLabel: 'hub', pinEnv: 'KEYHUB_HSM_PIN', sessions: 4 },
        delivery: { resendAfterSeconds: 5, ...(options.delivery ?? {}) },
        // Tests want checkpoints (and their witness messages) often; the benchmark asks for the production default.
        audit: { checkpointEverySeconds: options.checkpointEverySeconds ?? 2 },
        api: { port: 0 },
      }),
    );
    const d = new Deployment(dir, hsm, db, hubConfigPath);
    if (!options.plainNats) {
      await d.initHub();
      const out = path.join(dir.path, 'nats-auth');
      const r = await d.keyhubServer(['--json', 'nats-config', '--out', out]);
      if (r.code !== 0) throw new Error(`keyhub-server nats-config exited ${r.code}: ${r.stdout}${r.stderr}`);
      d.natsAuth = (JSON.parse(r.stdout) as { files: NatsAuthFiles }).files;
    }
    const cluster = options.natsCluster ? await startNatsCluster(3, { auth: d.natsAuth }) : undefined;
    d.natsCluster = cluster;
    d.nats = cluster ? cluster.nodes[0] : await startNatsServer({ name: 'keyhub-test', auth: d.natsAuth });
    d.natsUrls = cluster ? cluster.urls : [d.nats.url];
    const config = JSON.parse(await readFile(hubConfigPath, 'utf8')) as { nats: { servers: string[] } };
    config.nats.servers = d.natsUrls;
    await writeFile(hubConfigPath, JSON.stringify(config));
    for (const id of listenerIds) {
      const token = hsm.tokens.find((t) => t.label === id)!;
      const home = path.join(dir.path, `listener-${id}`);
      d.listeners.set(id, { id, token, home, env: { ...process.env, ...hsm.env, KEYHUB_LISTENER_PIN: token.pin, KEYHUB_LOG_LEVEL: 'warn', KEYHUB_HTTP_PORT: '0' } });
    }
    return d;
  }

  /** What `keyhub-server` runs with: the database URL and the hub PIN. Nothing else gets them. */
  get hubEnv(): NodeJS.ProcessEnv {
    const hubToken = this.hsm.tokens.find((t) => t.label === 'hub')!;
    // Metrics endpoints stay off unless a test asks for one: replicas and parallel runs would contend for the port.
    return { ...process.env, KEYHUB_HTTP_PORT: process.env.KEYHUB_HTTP_PORT ?? '0', ...this.hsm.env, KEYHUB_HSM_PIN: hubToken.pin, KEYHUB_CONFIG: this.hubConfigPath, KEYHUB_LOG_LEVEL: 'warn' };
  }

  get caCertPath(): string {
    return path.join(this.dir.path, 'keyhub-ca.pem');
  }

  /**
   * The client's whole environment, built from nothing: the hub's address,
   * its pinned CA, a token, and what a process needs to run. No database
   * URL, no PIN, no SoftHSM configuration can leak in from the test process.
   */
  clientEnv(token: string | undefined, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: this.dir.path,
      KEYHUB_CLI_HOME: path.join(this.dir.path, 'cli-home'),
      KEYHUB_ADDR: this.apiAddr,
      KEYHUB_CACERT: this.caCertPath,
      ...(token ? { KEYHUB_TOKEN: token } : {}),
      ...extra,
    };
  }

  /** `keyhub-server <args>` beside the database and the HSM. */
  keyhubServer(args: string[]): Promise<ExecResult> {
    return run(process.execPath, [HUB_SERVER, ...args], { env: this.hubEnv, timeoutMs: 120_000 });
  }

  /** The `keyhub` client as the key officer (or as another operator by name). */
  keyhub(args: string[], options: { as?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<ExecResult> {
    const token = this.tokens.get(options.as ?? 'officer');
    return run(process.execPath, [HUB_CLI, ...args], { env: this.clientEnv(token, options.env), timeoutMs: 120_000, input: options.input });
  }

  async keyhubJson<T>(args: string[], as?: string): Promise<T> {
    const r = await this.keyhub(['--json', ...args], { as });
    if (r.code !== 0) throw new Error(`keyhub ${args.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  listenerCli(id: string, args: string[]): Promise<ExecResult> {
    const site = this.site(id);
    return run(process.execPath, [LISTENER_CLI, '--home', site.home, ...args], { env: site.env, timeoutMs: 120_000 });
  }

  site(id: string): ListenerSite {
    const s = this.listeners.get(id);
    if (!s) throw new Error(`no listener ${id} in this deployment`);
    return s;
  }

  /** Idempotent: `create` runs it first when NATS needs the hub's keys. */
  async initHub(): Promise<string> {
    if (this.hubFingerprint) return this.hubFingerprint;
    const tokenFile = path.join(this.dir.path, 'admin.token');
    const r = await this.keyhubServer(['--json', 'init', '--admin-token-file', tokenFile, '--ca-cert-out', this.caCertPath]);
    if (r.code !== 0) throw new Error(`keyhub-server init exited ${r.code}: ${r.stdout}${r.stderr}`);
    const out = JSON.parse(r.stdout) as { fingerprint: string; admin: { name: string } | null };
    if (out.admin) this.tokens.set(out.admin.name, (await readFile(tokenFile, 'utf8')).trim());
    this.hubFingerprint = out.fingerprint;
    return out.fingerprint;
  }

  private async startServer(label: string): Promise<{ process: ManagedProcess; addr: string }> {
    const p = new ManagedProcess(HUB_SERVER, ['serve'], this.hubEnv, label);
    await p.waitFor(/keyhub serve: ready/);
    const m = /API on (https:\/\/[^\s;)]+)/.exec(p.output);
    if (!m) throw new Error(`${label} did not say where its API is:\n${p.output.slice(-2000)}`);
    return { process: p, addr: m[1] };
  }

  /**
   * Starts `keyhub serve`; the first time, the admin also creates the
   * operators the tests act as: `officer` (key-officer) and `auditor`.
   */
  async startHub(): Promise<ManagedProcess> {
    const { process: p, addr } = await this.startServer('keyhub serve');
    this.hub = p;
    this.apiAddr = addr;
    for (const [name, role] of [
      ['officer', 'key-officer'],
      ['auditor', 'auditor'],
    ] as const) {
      if (!this.tokens.has(name)) await this.createOperator(name, [role]);
    }
    return p;
  }

  /** An operator made by the admin through the API; their first token is kept under their name. */
  async createOperator(name: string, roles: string[]): Promise<string> {
    const r = await this.keyhub(['--json', 'operator', 'create', name, '--role', ...roles], { as: 'admin' });
    if (r.code !== 0) throw new Error(`operator create ${name} exited ${r.code}: ${r.stdout}${r.stderr}`);
    const token = (JSON.parse(r.stdout) as { token: { token: string } }).token.token;
    this.tokens.set(name, token);
    return token;
  }

  /** Another `keyhub serve` on the same database, NATS and HSM token. */
  async startReplica(): Promise<ManagedProcess> {
    const { process: p, addr } = await this.startServer(`keyhub serve (replica ${this.replicas.length + 2})`);
    this.replicas.push(p);
    this.replicaAddrs.push(addr);
    return p;
  }

  /** Stops the first hub; the client then talks to a replica, if one runs. */
  async stopHub(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.hub?.stop(signal);
    this.hub = undefined;
    if (this.replicaAddrs.length) this.apiAddr = this.replicaAddrs[0];
  }

  /** `keyhub listener register`: the site's bootstrap credential, written where the site can pick it up. */
  async registerListener(id: string, ttl?: string): Promise<string> {
    const file = path.join(this.dir.path, `${id}-${Date.now().toString(36)}.bootstrap.creds`);
    const r = await this.keyhub(['--json', 'listener', 'register', id, '--out', file, ...(ttl ? ['--ttl', ttl] : [])]);
    if (r.code !== 0) throw new Error(`listener register ${id} exited ${r.code}: ${r.stdout}${r.stderr}`);
    return file;
  }

  /** What `keyhub-listener init` needs for NATS here: the hub CA and a fresh bootstrap credential (registers the id). */
  async listenerNatsArgs(id: string): Promise<string[]> {
    // The hub drops enrollments without an open registration, with or without NATS auth; only a server with auth takes the credential.
    const creds = await this.registerListener(id);
    return this.natsAuth ? ['--nats-ca', this.caCertPath, '--bootstrap-creds', creds] : [];
  }

  /** Options for nats.js to reach this deployment's servers (TLS with the hub CA), without a credential. */
  natsTransport(): { servers: string[]; tls?: { caFile: string } } {
    return { servers: this.natsUrls, ...(this.natsAuth ? { tls: { caFile: this.caCertPath } } : {}) };
  }

  /** A test's own connection with every right in the Keyhub account (`keyhub-server nats-creds --as admin`). */
  async natsConnect(extra: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    if (this.natsAuth && !this.adminCreds) {
      const file = path.join(this.dir.path, 'nats-admin.creds');
      const r = await this.keyhubServer(['nats-creds', '--as', 'admin', '--out', file, '--ttl', '86400']);
      if (r.code !== 0) throw new Error(`keyhub-server nats-creds exited ${r.code}: ${r.stdout}${r.stderr}`);
      this.adminCreds = await readFile(file, 'utf8');
    }
    return connect({ ...this.natsTransport(), ...(this.adminCreds ? { authenticator: credsAuthenticator(new TextEncoder().encode(this.adminCreds)) } : {}), ...extra });
  }

  /** init + enroll + operator approval with the fingerprint the listener printed. */
  async enrollListener(id: string, options: { start?: boolean; approve?: boolean } = {}): Promise<string> {
    const site = this.site(id);
    const natsArgs = await this.listenerNatsArgs(id);
    const init = await this.listenerCli(id, [
      'init',
      '--id',
      id,
      '--nats',
      this.natsUrls.join(','),
      '--hub-fingerprint',
      this.hubFingerprint,
      '--hsm-module',
      this.hsm.modulePath,
      '--token-label',
      site.token.label,
      '--target',
      'hsm',
      ...natsArgs,
    ]);
    if (init.code !== 0) throw new Error(`listener init failed: ${init.stderr}`);
    const enroll = await this.listenerCli(id, ['--json', 'enroll']);
    if (enroll.code !== 0) throw new Error(`listener enroll failed: ${enroll.stdout}${enroll.stderr}`);
    const { fingerprint } = JSON.parse(enroll.stdout) as { fingerprint: string };
    await this.waitForListenerState(id, 'pending_approval');
    // Left pending: the test approves it its own way (a key-component ceremony).
    if (options.approve === false) return fingerprint;
    const approve = await this.keyhub(['listener', 'approve', id, '--fingerprint', fingerprint]);
    if (approve.code !== 0) throw new Error(`approve failed: ${approve.stdout}${approve.stderr}`);
    if (options.start ?? true) {
      await this.startListener(id);
      await this.waitForListenerState(id, 'active');
    }
    return fingerprint;
  }

  async startListener(id: string): Promise<ManagedProcess> {
    const site = this.site(id);
    site.process = new ManagedProcess(LISTENER_CLI, ['--home', site.home, 'run'], site.env, `listener ${id}`);
    await site.process.waitFor(/keyhub-listener run: (ready|waiting)/);
    return site.process;
  }

  async stopListener(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const site = this.site(id);
    await site.process?.stop(signal);
    site.process = undefined;
  }

  async listenerState(id: string): Promise<string | undefined> {
    const r = await this.keyhub(['--json', 'listener', 'list']);
    if (r.code !== 0) return undefined;
    const rows = JSON.parse(r.stdout) as Array<{ id: string; state: string }>;
    return rows.find((x) => x.id === id)?.state;
  }

  async waitForListenerState(id: string, state: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.listenerState(id);
      if (s === state) return;
      if (Date.now() > deadline) throw new Error(`listener ${id} is ${s ?? 'unknown'}, expected ${state}; hub output:\n${this.hub?.output.slice(-2000) ?? ''}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async cleanup(): Promise<void> {
    for (const id of this.listeners.keys()) await this.stopListener(id).catch(() => undefined);
    await this.stopHub().catch(() => undefined);
    for (const r of this.replicas) await r.stop().catch(() => undefined);
    await this.db.drop().catch(() => undefined);
    if (this.natsCluster) await this.natsCluster.cleanup().catch(() => undefined);
    else await this.nats.cleanup().catch(() => undefined);
    await this.hsm.cleanup().catch(() => undefined);
    await this.dir.remove().catch(() => undefined);
  }
}
