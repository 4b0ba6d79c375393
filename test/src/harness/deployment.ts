import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { createSoftHsm, createTestDatabase, makeTempDir, onProcessExit, run, startNatsCluster, startNatsServer, type ExecResult, type NatsClusterHandle, type NatsServerHandle, type SoftHsmEnv, type SoftHsmToken, type TempDir } from '../env';

const REPO = path.resolve(__dirname, '../../..');
export const HUB_CLI = path.join(REPO, 'hub/dist/cli/main.js');
export const LISTENER_CLI = path.join(REPO, 'listener/dist/cli/main.js');

/** A child process whose output is kept, with a way to wait for a line. */
export class ManagedProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;
  private readonly removeExitHook: () => void;

  constructor(file: string, args: string[], env: NodeJS.ProcessEnv, readonly label: string) {
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

  private constructor(
    readonly dir: TempDir,
    /** The only server, or the first node of the cluster. */
    readonly nats: NatsServerHandle,
    readonly natsUrls: string[],
    readonly natsCluster: NatsClusterHandle | undefined,
    readonly hsm: SoftHsmEnv,
    readonly db: { url: string; name: string; drop(): Promise<void> },
    readonly hubConfigPath: string,
  ) {}

  static async create(listenerIds: string[], options: { delivery?: Record<string, number>; natsCluster?: boolean } = {}): Promise<Deployment> {
    const dir = await makeTempDir('deployment');
    const cluster = options.natsCluster ? await startNatsCluster(3) : undefined;
    const nats = cluster ? cluster.nodes[0] : await startNatsServer({ name: 'keyhub-test' });
    const natsUrls = cluster ? cluster.urls : [nats.url];
    const hsm = await createSoftHsm(['hub', ...listenerIds]);
    const db = await createTestDatabase();
    const hubConfigPath = path.join(dir.path, 'hub.json');
    await writeFile(
      hubConfigPath,
      JSON.stringify({
        databaseUrl: db.url,
        nats: { servers: natsUrls, replicas: cluster ? 3 : 1 },
        hsm: { module: hsm.modulePath, tokenLabel: 'hub', pinEnv: 'KEYHUB_HSM_PIN', sessions: 4 },
        delivery: { resendAfterSeconds: 5, ...(options.delivery ?? {}) },
        audit: { checkpointEverySeconds: 2 },
      }),
    );
    const d = new Deployment(dir, nats, natsUrls, cluster, hsm, db, hubConfigPath);
    for (const id of listenerIds) {
      const token = hsm.tokens.find((t) => t.label === id)!;
      const home = path.join(dir.path, `listener-${id}`);
      d.listeners.set(id, { id, token, home, env: { ...process.env, ...hsm.env, KEYHUB_LISTENER_PIN: token.pin, KEYHUB_LOG_LEVEL: 'warn', KEYHUB_HTTP_PORT: '0' } });
    }
    return d;
  }

  get hubEnv(): NodeJS.ProcessEnv {
    const hubToken = this.hsm.tokens.find((t) => t.label === 'hub')!;
    // Metrics endpoints stay off unless a test asks for one: replicas and parallel runs would contend for the port.
    return { ...process.env, KEYHUB_HTTP_PORT: process.env.KEYHUB_HTTP_PORT ?? '0', ...this.hsm.env, KEYHUB_HSM_PIN: hubToken.pin, KEYHUB_CONFIG: this.hubConfigPath, KEYHUB_ACTOR: 'test-operator', KEYHUB_LOG_LEVEL: 'warn' };
  }

  keyhub(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ExecResult> {
    return run(process.execPath, [HUB_CLI, ...args], { env: { ...this.hubEnv, ...env }, timeoutMs: 120_000 });
  }

  async keyhubJson<T>(args: string[]): Promise<T> {
    const r = await this.keyhub(['--json', ...args]);
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

  async initHub(): Promise<string> {
    const r = await this.keyhubJson<{ fingerprint: string }>(['init']);
    this.hubFingerprint = r.fingerprint;
    return r.fingerprint;
  }

  async startHub(): Promise<ManagedProcess> {
    this.hub = new ManagedProcess(HUB_CLI, ['serve'], this.hubEnv, 'keyhub serve');
    await this.hub.waitFor(/keyhub serve: ready/);
    return this.hub;
  }

  /** Another `keyhub serve` on the same database, NATS and HSM token. */
  async startReplica(): Promise<ManagedProcess> {
    const p = new ManagedProcess(HUB_CLI, ['serve'], this.hubEnv, `keyhub serve (replica ${this.replicas.length + 2})`);
    await p.waitFor(/keyhub serve: ready/);
    this.replicas.push(p);
    return p;
  }

  async stopHub(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.hub?.stop(signal);
    this.hub = undefined;
  }

  /** init + enroll + operator approval with the fingerprint the listener printed. */
  async enrollListener(id: string, options: { start?: boolean } = {}): Promise<string> {
    const site = this.site(id);
    const init = await this.listenerCli(id, ['init', '--id', id, '--nats', this.natsUrls.join(','), '--hub-fingerprint', this.hubFingerprint, '--hsm-module', this.hsm.modulePath, '--token-label', site.token.label, '--target', 'hsm']);
    if (init.code !== 0) throw new Error(`listener init failed: ${init.stderr}`);
    const enroll = await this.listenerCli(id, ['--json', 'enroll']);
    if (enroll.code !== 0) throw new Error(`listener enroll failed: ${enroll.stdout}${enroll.stderr}`);
    const { fingerprint } = JSON.parse(enroll.stdout) as { fingerprint: string };
    await this.waitForListenerState(id, 'pending_approval');
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
