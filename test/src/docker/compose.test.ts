import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { LISTENER_ID_PATTERN } from '@keyhub/protocol';
import { hubConfigSchema, type HubConfig } from '@keyhub/hub/dist/config';

/*
 * Static checks of the Docker deployment (docker/): they read the compose
 * file, the NATS configurations, the hub configuration and the Dockerfiles,
 * and need no Docker engine, so they run in every CI.
 */

const REPO = path.resolve(__dirname, '../../..');
const DOCKER = path.join(REPO, 'docker');
const COMPOSE_FILE = path.join(DOCKER, 'compose.yml');

// ------------------------------------------------------------ narrowing ---

type Dict = Record<string, unknown>;

function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function dict(v: unknown, what: string): Dict {
  assert.ok(isDict(v), `${what} must be a mapping`);
  return v;
}

function str(v: unknown, what: string): string {
  assert.equal(typeof v, 'string', `${what} must be a string`);
  return v as string;
}

function list(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what} must be a list`);
  return v;
}

function sameSet(actual: Iterable<string>, expected: Iterable<string>, what: string): void {
  assert.deepEqual([...new Set(actual)].sort(), [...new Set(expected)].sort(), what);
}

// -------------------------------------------------------------- compose ---

interface Mount {
  /** Named volume, or a host path as written (relative to docker/). */
  source: string;
  target: string;
  bind: boolean;
}

interface Port {
  hostIp: string | undefined;
  containerPort: string;
  raw: string;
}

class Service {
  constructor(
    readonly name: string,
    readonly def: Dict,
  ) {}

  get image(): string | undefined {
    return typeof this.def.image === 'string' ? this.def.image : undefined;
  }

  /** `build.dockerfile` resolved against the build context, or undefined without a build. */
  get dockerfile(): string | undefined {
    if (this.def.build === undefined) return undefined;
    if (typeof this.def.build === 'string') return path.resolve(DOCKER, this.def.build, 'Dockerfile');
    const build = dict(this.def.build, `${this.name}.build`);
    const context = path.resolve(DOCKER, typeof build.context === 'string' ? build.context : '.');
    return path.resolve(context, typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile');
  }

  get buildContext(): string | undefined {
    if (this.def.build === undefined) return undefined;
    if (typeof this.def.build === 'string') return path.resolve(DOCKER, this.def.build);
    const build = dict(this.def.build, `${this.name}.build`);
    return path.resolve(DOCKER, typeof build.context === 'string' ? build.context : '.');
  }

  private words(key: 'command' | 'entrypoint'): string[] {
    const v = this.def[key];
    if (v === undefined || v === null) return [];
    if (typeof v === 'string') return v.trim().split(/\s+/);
    return list(v, `${this.name}.${key}`).map((w, i) => str(w, `${this.name}.${key}[${i}]`));
  }

  get command(): string[] {
    return this.words('command');
  }

  get entrypoint(): string[] {
    return this.words('entrypoint');
  }

  get environment(): Record<string, string> {
    const env = this.def.environment;
    const out: Record<string, string> = {};
    if (env === undefined || env === null) return out;
    if (Array.isArray(env)) {
      for (const item of env) {
        const s = str(item, `${this.name}.environment item`);
        const eq = s.indexOf('=');
        if (eq === -1) out[s] = '';
        else out[s.slice(0, eq)] = s.slice(eq + 1);
      }
      return out;
    }
    for (const [k, v] of Object.entries(dict(env, `${this.name}.environment`))) out[k] = v === null || v === undefined ? '' : String(v);
    return out;
  }

  get mounts(): Mount[] {
    const v = this.def.volumes;
    if (v === undefined) return [];
    return list(v, `${this.name}.volumes`).map((m, i) => {
      if (typeof m === 'string') {
        const [source, target] = m.split(':');
        assert.ok(source !== undefined && target !== undefined, `${this.name}.volumes[${i}] must be source:target`);
        return { source, target, bind: /^[./~]/.test(source) };
      }
      const d = dict(m, `${this.name}.volumes[${i}]`);
      const source = str(d.source, `${this.name}.volumes[${i}].source`);
      return { source, target: str(d.target, `${this.name}.volumes[${i}].target`), bind: d.type === 'bind' };
    });
  }

  get ports(): Port[] {
    const v = this.def.ports;
    if (v === undefined) return [];
    return list(v, `${this.name}.ports`).map((p, i) => {
      if (typeof p === 'string' || typeof p === 'number') {
        const raw = String(p);
        // [ip:][host:]container[/proto]; IPv6 addresses are bracketed.
        const containerPort = (raw.split(':').pop() ?? '').replace(/\/.*$/, '');
        const ipv6 = /^\[([^\]]+)\]:/.exec(raw);
        if (ipv6) return { hostIp: ipv6[1], containerPort, raw };
        const parts = raw.split(':');
        return { hostIp: parts.length === 3 ? parts[0] : undefined, containerPort, raw };
      }
      const d = dict(p, `${this.name}.ports[${i}]`);
      return { hostIp: typeof d.host_ip === 'string' ? d.host_ip : undefined, containerPort: String(d.target), raw: JSON.stringify(d) };
    });
  }

  get secrets(): string[] {
    const v = this.def.secrets;
    if (v === undefined) return [];
    return list(v, `${this.name}.secrets`).map((s, i) => (typeof s === 'string' ? s : str(dict(s, `${this.name}.secrets[${i}]`).source, `${this.name}.secrets[${i}].source`)));
  }

  /** Secret name -> path inside the container. */
  get secretTargets(): Map<string, string> {
    const out = new Map<string, string>();
    const v = this.def.secrets;
    if (v === undefined) return out;
    for (const s of list(v, `${this.name}.secrets`)) {
      if (typeof s === 'string') out.set(s, `/run/secrets/${s}`);
      else {
        const d = dict(s, `${this.name}.secrets item`);
        const source = str(d.source, `${this.name}.secrets item source`);
        const target = typeof d.target === 'string' ? d.target : source;
        out.set(source, target.startsWith('/') ? target : `/run/secrets/${target}`);
      }
    }
    return out;
  }

  get dependsOn(): Map<string, string> {
    const out = new Map<string, string>();
    const v = this.def.depends_on;
    if (v === undefined) return out;
    if (Array.isArray(v)) {
      for (const s of v) out.set(str(s, `${this.name}.depends_on item`), 'service_started');
      return out;
    }
    for (const [k, d] of Object.entries(dict(v, `${this.name}.depends_on`))) {
      const condition = isDict(d) && typeof d.condition === 'string' ? d.condition : 'service_started';
      out.set(k, condition);
    }
    return out;
  }

  /** Host file behind a path inside the container, when it is bind-mounted. */
  hostFileFor(containerPath: string): string | undefined {
    const m = this.mounts.find((x) => x.bind && x.target === containerPath);
    return m ? path.resolve(DOCKER, m.source) : undefined;
  }
}

interface Compose {
  doc: Dict;
  services: Map<string, Service>;
  secrets: Dict;
  volumes: Dict;
}

function loadCompose(): Compose {
  // Merge keys (<<) are YAML 1.1, which compose supports and the file uses for shared blocks.
  const doc = dict(parseYaml(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as unknown, 'compose file');
  const services = new Map<string, Service>();
  for (const [name, def] of Object.entries(dict(doc.services, 'services'))) services.set(name, new Service(name, dict(def, `service ${name}`)));
  return {
    doc,
    services,
    secrets: doc.secrets === undefined ? {} : dict(doc.secrets, 'secrets'),
    volumes: doc.volumes === undefined ? {} : dict(doc.volumes, 'volumes'),
  };
}

// ---------------------------------------------------------- nats config ---

type ConfValue = string | ConfValue[] | ConfBlock;
interface ConfBlock {
  [key: string]: ConfValue;
}

/**
 * Just enough of the NATS configuration syntax for our files: `key: value`,
 * `key = value`, `key { ... }`, `key: [ ... ]`, quoted strings, `#` and `//`
 * comments. Includes and variables are not supported (and not used).
 */
function parseNatsConf(text: string): ConfBlock {
  let i = 0;
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === ',' || c === ';';
  const skip = () => {
    for (;;) {
      while (i < text.length && isSpace(text[i])) i++;
      if (text[i] === '#' || (text[i] === '/' && text[i + 1] === '/')) {
        while (i < text.length && text[i] !== '\n') i++;
        continue;
      }
      return;
    }
  };
  const quoted = (): string => {
    const q = text[i++];
    const start = i;
    while (i < text.length && text[i] !== q) i++;
    assert.ok(i < text.length, 'unterminated string in NATS configuration');
    return text.slice(start, i++);
  };
  const value = (inArray: boolean): ConfValue => {
    const c = text[i];
    if (c === '{') {
      i++;
      return block('}');
    }
    if (c === '[') {
      i++;
      return array();
    }
    if (c === '"' || c === "'") return quoted();
    const start = i;
    const stop = inArray ? /[\s,\]]/ : /[\n,;}#]/;
    while (i < text.length && !stop.test(text[i] ?? '')) i++;
    return text.slice(start, i).trim();
  };
  const array = (): ConfValue[] => {
    const out: ConfValue[] = [];
    for (;;) {
      skip();
      assert.ok(i < text.length, 'unterminated array in NATS configuration');
      if (text[i] === ']') {
        i++;
        return out;
      }
      out.push(value(true));
    }
  };
  const block = (end: string | undefined): ConfBlock => {
    const out: ConfBlock = {};
    for (;;) {
      skip();
      if (i >= text.length) {
        assert.equal(end, undefined, 'unterminated block in NATS configuration');
        return out;
      }
      if (text[i] === end) {
        i++;
        return out;
      }
      const start = i;
      while (i < text.length && !/[\s:={]/.test(text[i] ?? '')) i++;
      const key = text.slice(start, i);
      assert.ok(key.length > 0, `unexpected ${JSON.stringify(text[i])} in NATS configuration`);
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (text[i] === ':' || text[i] === '=') i++;
      while (text[i] === ' ' || text[i] === '\t') i++;
      out[key] = value(false);
    }
  };
  return block(undefined);
}

function confBlock(v: ConfValue | undefined, what: string): ConfBlock {
  assert.ok(v !== undefined && typeof v === 'object' && !Array.isArray(v), `${what} must be a block`);
  return v;
}

function confString(v: ConfValue | undefined, what: string): string {
  assert.equal(typeof v, 'string', `${what} must be a value`);
  return v as string;
}

function portOf(listen: string): string {
  const m = /:(\d+)$/.exec(listen);
  assert.ok(m?.[1], `listen address ${listen} names no port`);
  return m[1];
}

// ----------------------------------------------------------- dockerfile ---

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  base: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Line-based: continuation lines joined, comments dropped, one instruction per logical line. */
function parseDockerfile(file: string): Stage[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const instructions: Instruction[] = [];
  let current = '';
  let startLine = 0;
  lines.forEach((raw, index) => {
    const trimmed = raw.trim();
    if (current === '' && (trimmed === '' || trimmed.startsWith('#'))) return;
    // A comment line inside a continuation is dropped, as Docker does.
    if (current !== '' && trimmed.startsWith('#')) return;
    if (current === '') startLine = index + 1;
    if (trimmed.endsWith('\\')) {
      current += trimmed.slice(0, -1) + ' ';
      return;
    }
    current += trimmed;
    const m = /^(\S+)\s*(.*)$/s.exec(current);
    assert.ok(m?.[1] !== undefined, `${file}:${startLine}: cannot parse`);
    instructions.push({ keyword: m[1].toUpperCase(), args: (m[2] ?? '').trim(), line: startLine });
    current = '';
  });
  assert.equal(current, '', `${file}: ends inside a continuation line`);
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m?.[1], `${file}:${ins.line}: cannot parse FROM ${ins.args}`);
      stages.push({ base: m[1], name: m[2], instructions: [] });
    } else if (ins.keyword !== 'ARG' || stages.length > 0) {
      assert.ok(stages.length > 0, `${file}:${ins.line}: ${ins.keyword} before the first FROM`);
      stages[stages.length - 1]?.instructions.push(ins);
    }
  }
  return stages;
}

interface CopyInstruction {
  from: string | undefined;
  chmod: string | undefined;
  sources: string[];
  dest: string;
  line: number;
}

function parseCopy(ins: Instruction): CopyInstruction {
  let rest = ins.args;
  const flags = new Map<string, string>();
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest);
    if (!m?.[1]) break;
    flags.set(m[1], m[2] ?? '');
    rest = rest.slice(m[0].length);
  }
  const parts = rest.startsWith('[') ? (JSON.parse(rest) as unknown[]).map((p) => str(p, `COPY argument at line ${ins.line}`)) : rest.split(/\s+/);
  assert.ok(parts.length >= 2, `line ${ins.line}: COPY needs a source and a destination`);
  return { from: flags.get('from'), chmod: flags.get('chmod'), sources: parts.slice(0, -1), dest: parts[parts.length - 1] ?? '', line: ins.line };
}

/** The simplified .dockerignore semantics our allowlists need: last matching pattern wins, a path matches its parents' patterns. */
function includedInContext(source: string, ignoreFile: string): boolean {
  if (!existsSync(ignoreFile)) return true;
  let included = true;
  const normalized = path.posix.normalize(source).replace(/\/$/, '');
  for (const raw of readFileSync(ignoreFile, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    const pattern = path.posix.normalize(negated ? line.slice(1) : line).replace(/\/$/, '');
    const matches = pattern === '*' || pattern === '**' || normalized === pattern || normalized.startsWith(`${pattern}/`);
    if (matches) included = negated;
  }
  return included;
}

// ------------------------------------------------------ hub image bits ---

const HUB_PACKAGE = path.join(REPO, 'hub', 'package.json');

/** Where the hub image puts a `bin` of hub/package.json: /app/hub/<bin path>. */
function hubBinInImage(name: string): string {
  const pkg = dict(JSON.parse(readFileSync(HUB_PACKAGE, 'utf8')) as unknown, 'hub/package.json');
  return path.posix.join('/app/hub', str(dict(pkg.bin, 'hub bin')[name], `hub bin.${name}`));
}

/**
 * The hub configuration a replica runs with, as loadHubConfig builds it
 * (file, then the environment's overrides), parsed with the real schema.
 */
function hubConfigOf(hub: Service): HubConfig {
  const file = hub.hostFileFor(hub.environment.KEYHUB_CONFIG ?? '');
  assert.ok(file && existsSync(file), `${hub.name}: the hub configuration file exists`);
  const raw = dict(JSON.parse(readFileSync(file, 'utf8')) as unknown, 'hub.json');
  if (hub.environment.KEYHUB_DATABASE_URL) raw.databaseUrl = hub.environment.KEYHUB_DATABASE_URL;
  if (hub.environment.KEYHUB_NATS_URL) raw.nats = { ...dict(raw.nats, 'hub.json nats'), servers: hub.environment.KEYHUB_NATS_URL.split(',') };
  const parsed = hubConfigSchema.safeParse(raw);
  assert.ok(parsed.success, `hub.json: ${parsed.success ? '' : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** Value of a command-line option (`--opt value` or `--opt=value`) in argv, or undefined. */
function optionValue(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === name) return argv[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

/**
 * Scripts a Dockerfile's RUN instructions write with
 * `printf '<script>' >/usr/local/bin/<name>`: name -> script text.
 */
function printfWrappers(runs: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of runs) {
    for (const m of r.matchAll(/printf\s+'([^']*)'\s*>\s*(\/usr\/local\/bin\/[A-Za-z0-9._-]+)/g)) {
      out.set(m[2] ?? '', (m[1] ?? '').replace(/\\n/g, '\n'));
    }
  }
  return out;
}

/** The file a wrapper script runs with `exec node <file> "$@"`. */
function wrapperTarget(script: string, what: string): string {
  assert.match(script, /^#!\/bin\/sh\n/, `${what} is a sh script`);
  const m = /^exec node (\S+) "\$@"$/m.exec(script);
  assert.ok(m?.[1], `${what} must \`exec node <file> "$@"\`, got ${JSON.stringify(script)}`);
  return m[1];
}

// ---------------------------------------------------------------- tests ---

describe('docker deployment (static checks)', function () {
  let compose: Compose;
  let natsServices: Service[];
  let hubServices: Service[];
  let listenerServices: Service[];

  const buildsWith = (s: Service, dockerfile: string) => s.dockerfile === path.join(DOCKER, dockerfile);

  before(function () {
    compose = loadCompose();
    const all = [...compose.services.values()];
    natsServices = all.filter((s) => s.image?.startsWith('nats:'));
    hubServices = all.filter((s) => buildsWith(s, 'hub.Dockerfile') && s.command.includes('serve'));
    listenerServices = all.filter((s) => buildsWith(s, 'listener.Dockerfile'));
  });

  describe('compose.yml', function () {
    it('has the services of the deployment', function () {
      for (const name of ['nats-1', 'nats-2', 'nats-3', 'postgres', 'hub-init', 'hub-1', 'hub-2', 'listener-site-a', 'listener-site-b']) {
        assert.ok(compose.services.has(name), `service ${name} is missing`);
      }
    });

    it('runs three NATS 2.10 nodes that form one JetStream cluster', function () {
      assert.equal(natsServices.length, 3, 'three NATS services');
      const nodes = natsServices.map((s) => {
        assert.equal(s.image, 'nats:2.10', `${s.name} image`);
        const cmd = s.command;
        const configArg = cmd.indexOf('--config') >= 0 ? cmd.indexOf('--config') : cmd.indexOf('-c');
        assert.ok(configArg >= 0 && cmd[configArg + 1], `${s.name} must start nats-server with --config`);
        const confInContainer = cmd[configArg + 1] ?? '';
        const confFile = s.hostFileFor(confInContainer);
        assert.ok(confFile, `${s.name}: ${confInContainer} must be bind-mounted from docker/`);
        assert.ok(confFile.startsWith(DOCKER + path.sep), `${s.name}: configuration comes from docker/`);
        assert.ok(existsSync(confFile), `${confFile} exists`);
        const conf = parseNatsConf(readFileSync(confFile, 'utf8'));
        return { service: s, conf, file: path.relative(REPO, confFile) };
      });

      const clusterNames = new Set<string>();
      const serverNames = new Set<string>();
      const dataVolumes = new Set<string>();
      for (const { service, conf, file } of nodes) {
        serverNames.add(confString(conf.server_name, `${file} server_name`));

        // JetStream on, storing into a volume of this node alone.
        const js = conf.jetstream;
        assert.ok(js !== undefined, `${file}: jetstream is not enabled`);
        assert.notEqual(js, 'false', `${file}: jetstream is disabled`);
        assert.notEqual(js, 'disabled', `${file}: jetstream is disabled`);
        const storeDir = confString(confBlock(js, `${file} jetstream`).store_dir, `${file} jetstream.store_dir`);
        const dataMount = service.mounts.find((m) => !m.bind && (storeDir === m.target || storeDir.startsWith(`${m.target}/`)));
        assert.ok(dataMount, `${service.name}: jetstream.store_dir ${storeDir} must be on a named volume`);
        assert.ok(dataMount.source in compose.volumes, `${service.name}: volume ${dataMount.source} is declared`);
        assert.ok(!dataVolumes.has(dataMount.source), `${service.name}: volume ${dataMount.source} is shared with another node`);
        dataVolumes.add(dataMount.source);

        // Routes to exactly the other two nodes, on their cluster ports.
        const cluster = confBlock(conf.cluster, `${file} cluster`);
        clusterNames.add(confString(cluster.name, `${file} cluster.name`));
        const routes = cluster.routes;
        assert.ok(Array.isArray(routes), `${file}: cluster.routes must be a list`);
        const routed = routes.map((r) => new URL(confString(r, `${file} route`)));
        const others = nodes.filter((n) => n.service !== service);
        const targets = routed.filter((u) => u.hostname !== service.name);
        sameSet(
          targets.map((u) => u.hostname),
          others.map((n) => n.service.name),
          `${file}: routes must name the other two nodes`,
        );
        for (const u of targets) {
          assert.equal(u.protocol, 'nats-route:', `${file}: route ${u.href}`);
          const peer = others.find((n) => n.service.name === u.hostname);
          const peerListen = confString(confBlock(peer?.conf.cluster, `${u.hostname} cluster`).listen, `${u.hostname} cluster.listen`);
          assert.equal(u.port, portOf(peerListen), `${file}: route ${u.href} must use ${u.hostname}'s cluster port`);
        }
      }
      assert.equal(serverNames.size, 3, 'server_name must be unique per node');
      assert.equal(clusterNames.size, 1, `all nodes must name the same cluster, got ${[...clusterNames].join(', ')}`);
    });

    it('gives PostgreSQL a pg_isready healthcheck, a volume and a password from a secret', function () {
      const pg = compose.services.get('postgres');
      assert.ok(pg);
      assert.match(pg.image ?? '', /^postgres:15\b/);
      const hc = dict(pg.def.healthcheck, 'postgres.healthcheck');
      const test = Array.isArray(hc.test) ? hc.test.join(' ') : str(hc.test, 'postgres.healthcheck.test');
      assert.match(test, /pg_isready/);
      assert.ok(
        pg.mounts.some((m) => !m.bind && m.target === '/var/lib/postgresql/data'),
        'postgres data must be on a named volume',
      );
      assert.match(pg.environment.POSTGRES_PASSWORD_FILE ?? '', /^\/run\/secrets\//);
      assert.equal(pg.environment.POSTGRES_PASSWORD, undefined, 'no inline POSTGRES_PASSWORD');
    });

    it('runs two hub replicas of `keyhub serve` with the same configuration', function () {
      assert.deepEqual(hubServices.map((s) => s.name).sort(), ['hub-1', 'hub-2']);
      const [a, b] = hubServices;
      assert.ok(a && b);
      assert.deepEqual(a.environment, b.environment, 'environment');
      assert.deepEqual(a.mounts, b.mounts, 'volumes (configuration and HSM token)');
      assert.deepEqual(a.secrets, b.secrets, 'secrets');
      assert.equal(a.dockerfile, b.dockerfile, 'image build');
      assert.ok(a.environment.KEYHUB_CONFIG, 'KEYHUB_CONFIG is set');
      assert.ok(a.hostFileFor(a.environment.KEYHUB_CONFIG), 'the hub configuration is mounted from docker/');
      for (const s of hubServices) {
        assert.equal(s.dependsOn.get('hub-init'), 'service_completed_successfully', `${s.name} waits for hub-init`);
        assert.equal(s.dependsOn.get('postgres'), 'service_healthy', `${s.name} waits for a healthy postgres`);
        for (const n of natsServices) assert.ok(s.dependsOn.has(n.name), `${s.name} depends on ${n.name}`);
      }
    });

    it("initializes the hub once, with the replicas' configuration and token", function () {
      const init = compose.services.get('hub-init');
      const hub = hubServices[0];
      assert.ok(init && hub);
      assert.ok(buildsWith(init, 'hub.Dockerfile'), 'hub-init runs the hub image');
      assert.equal(init.command[0], 'init', 'hub-init runs `keyhub-server init`');
      assert.match(init.entrypoint[0] ?? '', /hub-token\.sh$/);
      assert.equal(init.environment.KEYHUB_CONFIG, hub.environment.KEYHUB_CONFIG);
      assert.equal(init.environment.KEYHUB_DATABASE_URL, hub.environment.KEYHUB_DATABASE_URL);
      const initMounts = new Set(init.mounts.map((m) => `${m.source}:${m.target}`));
      for (const m of hub.mounts) assert.ok(initMounts.has(`${m.source}:${m.target}`), `hub-init mounts the replicas' ${m.source} at ${m.target}`);
      assert.equal(init.dependsOn.get('postgres'), 'service_healthy');
      assert.ok(init.def.restart === undefined || init.def.restart === 'no', 'hub-init is one-shot');
    });

    it("leaves the first admin's token and the CA certificate in a volume of hub-init alone", function () {
      const init = compose.services.get('hub-init');
      assert.ok(init);
      const tokenFile = optionValue(init.command, '--admin-token-file');
      const caFile = optionValue(init.command, '--ca-cert-out');
      assert.ok(tokenFile && path.posix.isAbsolute(tokenFile), 'hub-init passes --admin-token-file with an absolute path');
      assert.ok(caFile && path.posix.isAbsolute(caFile), 'hub-init passes --ca-cert-out with an absolute path');
      // Both on a named volume (the root file system is read-only, and the
      // operator copies them out after hub-init has exited).
      const volumeOf = (file: string) => init.mounts.find((m) => !m.bind && (file === m.target || file.startsWith(`${m.target}/`)));
      const tokenVolume = volumeOf(tokenFile);
      assert.ok(tokenVolume, `${tokenFile} must be on a named volume`);
      assert.ok(tokenVolume.source in compose.volumes, `volume ${tokenVolume.source} is declared`);
      assert.equal(volumeOf(caFile)?.source, tokenVolume.source, 'the CA certificate is next to the token');
      assert.equal(path.posix.dirname(tokenFile), tokenVolume.target, 'the token is at the top of its volume');
      for (const s of compose.services.values()) {
        if (s === init) continue;
        assert.ok(!s.mounts.some((m) => m.source === tokenVolume.source), `${s.name} must not mount ${tokenVolume.source}: the admin token stays with hub-init`);
      }
      // A new named volume takes the owner and mode of the image's directory:
      // the service user, 0700.
      const dockerfile = init.dockerfile;
      assert.ok(dockerfile);
      const runtime = parseDockerfile(dockerfile).pop();
      assert.ok(runtime);
      const runs = runtime.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
      const dir = tokenVolume.target;
      const under = (r: string, cmd: RegExp) => r.split(/&&|;/).some((part) => cmd.test(part) && part.split(/\s+/).includes(dir));
      assert.ok(
        runs.some((r) => under(r, /\bmkdir\b/)),
        `the hub image creates ${dir}`,
      );
      assert.ok(
        runs.some((r) => under(r, /\bchmod 0?700\b/)),
        `the hub image makes ${dir} mode 0700`,
      );
      const users = runtime.instructions.filter((i) => i.keyword === 'USER');
      const user = users[users.length - 1]?.args.split(':')[0];
      assert.ok(user);
      assert.ok(
        runs.some((r) => r.split(/&&|;/).some((part) => new RegExp(`\\bchown (-R )?${user}:${user} (/var/lib/keyhub|${dir})(\\s|$)`).test(part.trim()))),
        `${dir} belongs to ${user}`,
      );
    });

    it('has a hub configuration that the hub accepts, naming all three NATS nodes', function () {
      const hub = hubServices[0];
      assert.ok(hub);
      const config = hubConfigOf(hub);
      sameSet(
        config.nats.servers.map((u) => new URL(u).hostname),
        natsServices.map((s) => s.name),
        'nats.servers must name every NATS node',
      );
      assert.equal(config.nats.replicas, natsServices.length, 'streams replicated on every node');
      assert.equal(new URL(config.databaseUrl).password, '', 'no password in the database URL');
      assert.ok(config.hsm.pinFile, 'the hub PIN comes from a file');
      const pinSecret = [...hub.secretTargets].find(([, target]) => target === config.hsm.pinFile);
      assert.ok(pinSecret, `hsm.pinFile ${config.hsm.pinFile} must be a secret mounted into the hub`);
      assert.ok(path.isAbsolute(config.hsm.module), 'hsm.module is an absolute path');
    });

    it('runs two listeners with their own tokens, naming all three NATS nodes', function () {
      assert.equal(listenerServices.length, 2, 'two listener services');
      const ids = new Set<string>();
      const volumes = new Set<string>();
      for (const s of listenerServices) {
        const env = s.environment;
        const id = env.LISTENER_ID ?? '';
        assert.match(id, LISTENER_ID_PATTERN, `${s.name}: LISTENER_ID`);
        assert.ok(!ids.has(id), `${s.name}: LISTENER_ID ${id} is used twice`);
        ids.add(id);
        assert.match(env.HUB_FINGERPRINT ?? '', /^\$\{HUB_FINGERPRINT[:}]/, `${s.name}: HUB_FINGERPRINT comes from the operator's environment`);
        const urls = str(env.KEYHUB_NATS_URL, `${s.name}: KEYHUB_NATS_URL`)
          .split(',')
          .map((u) => new URL(u.trim()));
        sameSet(
          urls.map((u) => u.hostname),
          natsServices.map((n) => n.name),
          `${s.name}: KEYHUB_NATS_URL must name every NATS node`,
        );
        assert.match(s.entrypoint[0] ?? '', /listener-entrypoint\.sh$/, `${s.name}: entrypoint`);
        for (const m of s.mounts.filter((x) => !x.bind)) {
          assert.ok(!volumes.has(m.source), `${s.name}: volume ${m.source} is shared with another listener`);
          volumes.add(m.source);
        }
        assert.ok(
          s.mounts.some((m) => !m.bind && m.target === '/var/lib/keyhub/softhsm/tokens'),
          `${s.name}: its SoftHSM2 token directory is a volume`,
        );
        // The listener image sets KEYHUB_LISTENER_HOME=/var/lib/keyhub/listener.
        const home = env.KEYHUB_LISTENER_HOME ?? '/var/lib/keyhub/listener';
        assert.ok(
          s.mounts.some((m) => !m.bind && m.target === home),
          `${s.name}: its listener home ${home} is a volume`,
        );
      }
    });

    it('refers only to files that exist', function () {
      for (const s of compose.services.values()) {
        if (s.def.build !== undefined) {
          const context = s.buildContext;
          const dockerfile = s.dockerfile;
          assert.ok(context && existsSync(context) && statSync(context).isDirectory(), `${s.name}: build context ${context}`);
          assert.ok(dockerfile && existsSync(dockerfile), `${s.name}: ${dockerfile} exists`);
        }
        for (const m of s.mounts.filter((x) => x.bind)) {
          const host = path.resolve(DOCKER, m.source);
          assert.ok(host.startsWith(DOCKER + path.sep), `${s.name}: bind mount ${m.source} must be under docker/`);
          assert.ok(existsSync(host), `${s.name}: ${m.source} exists`);
        }
        for (const m of s.mounts.filter((x) => !x.bind)) {
          assert.ok(m.source in compose.volumes, `${s.name}: volume ${m.source} is declared`);
        }
        const envFiles = s.def.env_file === undefined ? [] : Array.isArray(s.def.env_file) ? s.def.env_file : [s.def.env_file];
        for (const f of envFiles) {
          const p = typeof f === 'string' ? f : str(dict(f, `${s.name}.env_file`).path, `${s.name}.env_file.path`);
          assert.ok(existsSync(path.resolve(DOCKER, p)), `${s.name}: env_file ${p} exists`);
        }
        // An entrypoint script must be put into the image by its Dockerfile, from a file in the repository.
        const entry = s.entrypoint[0];
        if (entry?.startsWith('/') && s.dockerfile) {
          const copies = parseDockerfile(s.dockerfile)
            .flatMap((st) => st.instructions)
            .filter((i) => i.keyword === 'COPY')
            .map(parseCopy)
            .filter((c) => c.from === undefined && c.dest === entry);
          assert.equal(copies.length, 1, `${s.name}: ${path.relative(REPO, s.dockerfile)} must COPY ${entry}`);
        }
      }
      // Real secret files are not in the repository; their templates are.
      for (const [name, def] of Object.entries(compose.secrets)) {
        const file = str(dict(def, `secret ${name}`).file, `secret ${name}: file`);
        const host = path.resolve(DOCKER, file);
        assert.ok(host.startsWith(path.join(DOCKER, 'secrets') + path.sep), `secret ${name} lives in docker/secrets`);
        assert.ok(existsSync(`${host}.example`), `secret ${name}: ${file}.example exists`);
        assert.match(readFileSync(`${host}.example`, 'utf8'), /^CHANGE-ME/, `secret ${name}: the template holds a placeholder`);
      }
      const ignore = readFileSync(path.join(DOCKER, 'secrets', '.gitignore'), 'utf8')
        .split('\n')
        .map((l) => l.trim());
      assert.ok(ignore.includes('*') && ignore.includes('!*.example'), 'docker/secrets/.gitignore keeps real secrets out of git');
    });

    it('publishes ports on 127.0.0.1 only', function () {
      let published = 0;
      for (const s of compose.services.values()) {
        for (const p of s.ports) {
          published++;
          assert.equal(p.hostIp, '127.0.0.1', `${s.name}: port ${p.raw} must be bound to 127.0.0.1`);
        }
      }
      assert.ok(published > 0, 'some ports are published (for health and metrics)');
    });

    it('publishes the hub and listener health endpoints where they listen', function () {
      for (const s of [...hubServices, ...listenerServices]) {
        const env = s.environment;
        assert.equal(env.KEYHUB_HTTP_HOST, '0.0.0.0', `${s.name}: KEYHUB_HTTP_HOST must be 0.0.0.0, or the published port reaches nothing`);
        assert.ok(
          s.ports.some((p) => p.containerPort === env.KEYHUB_HTTP_PORT),
          `${s.name}: publishes its health endpoint (KEYHUB_HTTP_PORT ${env.KEYHUB_HTTP_PORT})`,
        );
        // A hub publishes its API too (next test); nothing else.
        const apiPort = hubServices.includes(s) ? String(hubConfigOf(s).api.port) : undefined;
        for (const p of s.ports) {
          assert.ok(p.containerPort === env.KEYHUB_HTTP_PORT || p.containerPort === apiPort, `${s.name}: port ${p.raw} must lead to KEYHUB_HTTP_PORT or the hub API`);
        }
      }
    });

    it("publishes each hub replica's HTTPS API on 127.0.0.1 only, with a certificate for its names", function () {
      const hostPorts = new Set<string>();
      for (const s of hubServices) {
        const { api } = hubConfigOf(s);
        assert.equal(api.host, '0.0.0.0', `${s.name}: api.host must be 0.0.0.0 in the container, or the published port reaches nothing`);
        assert.equal(api.tlsCertFile, undefined, `${s.name}: the API certificate is issued by the hub CA at start`);
        const published = s.ports.filter((p) => p.containerPort === String(api.port));
        assert.equal(published.length, 1, `${s.name}: publishes the API port ${api.port} once`);
        const [p] = published;
        assert.ok(p);
        assert.equal(p.hostIp, '127.0.0.1', `${s.name}: the API (${p.raw}) must be bound to 127.0.0.1`);
        const hostPort = p.raw.split(':')[1] ?? '';
        assert.match(hostPort, /^\d+$/, `${s.name}: a fixed host port for the API (${p.raw})`);
        assert.ok(!hostPorts.has(hostPort), `${s.name}: host port ${hostPort} is taken by another replica`);
        hostPorts.add(hostPort);
        // Reached as https://127.0.0.1:<port> from the host, and by service name inside the network.
        assert.ok(api.ipAddresses.includes('127.0.0.1'), 'api.ipAddresses covers 127.0.0.1');
        for (const name of [s.name, 'localhost']) assert.ok(api.hostnames.includes(name), `api.hostnames covers ${name}`);
      }
      assert.deepEqual([...hostPorts].sort(), ['8443', '8444'], 'hub-1 and hub-2 on 127.0.0.1:8443 and :8444');
    });

    it('keeps secret values out of the compose file', function () {
      let checked = 0;
      for (const s of compose.services.values()) {
        const targets = s.secretTargets;
        for (const [key, value] of Object.entries(s.environment)) {
          if (/PIN|PASSWORD|SECRET/i.test(key)) {
            checked++;
            assert.match(key, /_FILE$/, `${s.name}: ${key} must name a file, not hold the secret`);
            const secret = [...targets].find(([, target]) => target === value);
            assert.ok(secret, `${s.name}: ${key}=${value} must be a secret mounted into the service`);
            assert.ok(secret[0] in compose.secrets, `${s.name}: secret ${secret[0]} is declared`);
          }
          if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !value.includes('${')) {
            for (const u of value.split(',')) assert.equal(new URL(u.trim()).password, '', `${s.name}: ${key} carries a password`);
          }
        }
        for (const name of s.secrets) assert.ok(name in compose.secrets, `${s.name}: secret ${name} is declared`);
      }
      assert.ok(checked >= 5, 'PINs and passwords are configured through *_FILE variables');
      for (const [name, def] of Object.entries(compose.secrets)) {
        const d = dict(def, `secret ${name}`);
        assert.ok(typeof d.file === 'string' && d.environment === undefined, `secret ${name} must come from a file`);
      }
    });

    it('is valid for `docker compose config`', function () {
      this.timeout(60_000);
      const probe = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8', timeout: 30_000 });
      const err = probe.error as NodeJS.ErrnoException | undefined;
      if (err?.code === 'ENOENT') this.skip(); // no docker CLI on this machine
      // The docker CLI without its compose plugin cannot judge the file either.
      if (probe.status !== 0) this.skip();
      const r = spawnSync('docker', ['compose', '-f', COMPOSE_FILE, 'config', '--quiet'], {
        encoding: 'utf8',
        timeout: 50_000,
        // Profiles on, so that the listeners are checked too.
        env: { ...process.env, COMPOSE_PROFILES: 'listeners' },
      });
      assert.equal(r.status, 0, `docker compose config failed:\n${r.stdout}${r.stderr}`);
    });
  });

  for (const [dockerfile, workspace, cli, defaultCommand] of [
    ['hub.Dockerfile', 'hub', 'keyhub-server', 'serve'],
    ['listener.Dockerfile', 'listener', 'keyhub-listener', 'run'],
  ] as const) {
    describe(`${dockerfile}`, function () {
      const file = path.join(DOCKER, dockerfile);
      let stages: Stage[];
      let all: Instruction[];
      let final: Stage;
      const runs = () => all.filter((i) => i.keyword === 'RUN').map((i) => i.args);

      before(function () {
        stages = parseDockerfile(file);
        all = stages.flatMap((s) => s.instructions);
        const last = stages[stages.length - 1];
        assert.ok(last, 'at least one stage');
        final = last;
      });

      it('builds in stages on node:20-bookworm-slim', function () {
        assert.ok(stages.length >= 2, 'multi-stage');
        const names = new Set<string>();
        for (const s of stages) {
          assert.ok(s.base === 'node:20-bookworm-slim' || names.has(s.base), `base ${s.base}`);
          if (s.name) names.add(s.name);
        }
        const build = stages[0];
        assert.ok(build?.name, 'the build stage is named');
        assert.ok(
          final.instructions.some((i) => i.keyword === 'COPY' && parseCopy(i).from === build.name),
          'the runtime stage copies the build output',
        );
      });

      it('installs with npm ci, compiles with tsc -b and prunes dev dependencies', function () {
        const build = stages[0];
        assert.ok(build);
        const buildRuns = build.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
        assert.ok(
          buildRuns.some((r) => /\bnpm ci\b/.test(r)),
          'npm ci',
        );
        assert.ok(!runs().some((r) => /\bnpm (install|i)\b/.test(r)), 'no npm install: the lock file decides');
        assert.ok(
          buildRuns.some((r) => /\btsc -b\b/.test(r)),
          'tsc -b',
        );
        assert.ok(
          buildRuns.some((r) => /\bnpm prune --omit=dev\b/.test(r)),
          'npm prune --omit=dev',
        );
        assert.ok(
          buildRuns.some((r) => /apt-get install[^&]*\bpython3\b[^&]*\bmake\b[^&]*\bg\+\+/.test(r)),
          'python3 make g++ for pkcs11js',
        );
        const runtimeRuns = final.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
        assert.ok(
          runtimeRuns.some((r) => /apt-get install[^&]*\bsofthsm2\b/.test(r)),
          'softhsm2 in the runtime',
        );
        assert.ok(
          runtimeRuns.some((r) => /apt-get install[^&]*\bopensc\b/.test(r)),
          'opensc in the runtime',
        );
        for (const r of runs().filter((x) => /apt-get install/.test(x))) {
          assert.match(r, /--no-install-recommends/, 'apt-get install --no-install-recommends');
          assert.match(r, /rm -rf \/var\/lib\/apt\/lists/, 'apt lists cleaned in the same layer');
        }
      });

      it('compiles the workspaces it needs, and not the other service', function () {
        const sources = all
          .filter((i) => i.keyword === 'COPY')
          .map(parseCopy)
          .filter((c) => c.from === undefined)
          .flatMap((c) => c.sources);
        for (const ws of ['protocol', 'shared', workspace]) assert.ok(sources.includes(`${ws}/src`), `copies ${ws}/src`);
        const other = workspace === 'hub' ? 'listener' : 'hub';
        assert.ok(!sources.includes(`${other}/src`), `does not copy ${other}/src`);
      });

      it('downloads nothing outside the package managers', function () {
        for (const r of runs()) {
          assert.doesNotMatch(r, /\bwget\b/, `no wget: ${r}`);
          assert.doesNotMatch(r, /\bcurl\b/, `no curl: ${r}`);
          assert.doesNotMatch(r, /\|\s*(sh|bash)\b/, `nothing piped into a shell: ${r}`);
        }
        for (const i of all.filter((x) => x.keyword === 'ADD')) assert.doesNotMatch(i.args, /https?:\/\//, `no ADD from a URL (line ${i.line})`);
      });

      it('runs as a non-root user', function () {
        const users = final.instructions.filter((i) => i.keyword === 'USER');
        const user = users[users.length - 1]?.args.split(':')[0];
        assert.ok(user, 'the final stage sets USER');
        assert.ok(user !== 'root' && user !== '0', `USER ${user} is not root`);
      });

      it(`starts ${cli}, \`${defaultCommand}\` by default`, function () {
        const entry = final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').pop();
        assert.ok(entry, 'ENTRYPOINT present');
        const argv = (JSON.parse(entry.args) as unknown[]).map((a) => str(a, 'ENTRYPOINT argument'));
        const pkg = dict(JSON.parse(readFileSync(path.join(REPO, workspace, 'package.json'), 'utf8')) as unknown, `${workspace}/package.json`);
        const bin = str(dict(pkg.bin, `${workspace} bin`)[cli], `${workspace} bin.${cli}`);
        assert.deepEqual(argv, ['node', path.posix.join('/app', workspace, bin)]);
        const cmd = final.instructions.filter((i) => i.keyword === 'CMD').pop();
        assert.ok(cmd, 'CMD present');
        assert.deepEqual(JSON.parse(cmd.args) as unknown, [defaultCommand]);
      });

      it('copies only files that exist and are in its build context', function () {
        const ignoreFile = `${file}.dockerignore`;
        let count = 0;
        for (const c of all.filter((i) => i.keyword === 'COPY').map(parseCopy)) {
          if (c.from !== undefined) continue;
          for (const src of c.sources) {
            count++;
            assert.ok(existsSync(path.join(REPO, src)), `line ${c.line}: ${src} does not exist`);
            assert.ok(includedInContext(src, ignoreFile), `line ${c.line}: ${src} is excluded by ${path.basename(ignoreFile)}`);
          }
        }
        assert.ok(count > 0);
        assert.ok(!includedInContext('docker/secrets/hub_hsm_pin', ignoreFile), 'secrets are kept out of the build context');
      });
    });
  }

  describe('hub.Dockerfile: server and client', function () {
    let stages: Stage[];
    let build: Stage;
    let runtime: Stage;
    const runsOf = (st: Stage) => st.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);

    before(function () {
      stages = parseDockerfile(path.join(DOCKER, 'hub.Dockerfile'));
      const first = stages[0];
      const last = stages[stages.length - 1];
      assert.ok(first && last && first !== last);
      build = first;
      runtime = last;
    });

    it('has the bins the Dockerfile and scripts rely on', function () {
      assert.equal(hubBinInImage('keyhub'), '/app/hub/cli/dist/main.js');
      assert.equal(hubBinInImage('keyhub-server'), '/app/hub/dist/main.js');
    });

    it('compiles the client project hub/cli and copies hub/cli/dist into the image', function () {
      const sources = build.instructions
        .filter((i) => i.keyword === 'COPY')
        .map(parseCopy)
        .filter((c) => c.from === undefined)
        .flatMap((c) => c.sources);
      for (const src of ['hub/cli/tsconfig.json', 'hub/cli/src']) assert.ok(sources.includes(src), `copies ${src}`);
      const runs = runsOf(build);
      assert.ok(
        runs.some((r) => /\btsc -b\b[^&;|]*\shub\/cli(\s|$)/.test(r)),
        'tsc -b builds hub/cli (it is not referenced by hub/tsconfig.json)',
      );
      // The gathered tree (/out) is what the runtime copies to /app.
      const gather = runtime.instructions
        .filter((i) => i.keyword === 'COPY')
        .map(parseCopy)
        .find((c) => c.from === build.name);
      assert.ok(gather, 'the runtime copies the build output');
      const out = (gather.sources[0] ?? '').replace(/\/$/, '');
      assert.equal(gather.dest.replace(/\/$/, ''), '/app', 'the build output lands in /app');
      assert.ok(
        runs.some((r) => r.split(/&&|;/).some((part) => new RegExp(`\\bcp -a\\s+hub/cli/dist\\s+${out}/hub/cli/?\\s*$`).test(part.trim()))),
        `hub/cli/dist is copied to ${out}/hub/cli/ (so /app/hub/cli/dist in the image)`,
      );
      // The client resolves commander and cli-progress from the hub's dependencies.
      const pkg = dict(JSON.parse(readFileSync(HUB_PACKAGE, 'utf8')) as unknown, 'hub/package.json');
      const deps = dict(pkg.dependencies, 'hub dependencies');
      for (const d of ['commander', 'cli-progress']) assert.ok(d in deps, `${d} is a production dependency of the hub (kept by npm prune --omit=dev)`);
    });

    it('starts the server and wraps both programs in /usr/local/bin', function () {
      const wrappers = printfWrappers(runsOf(runtime));
      const client = wrappers.get('/usr/local/bin/keyhub');
      const server = wrappers.get('/usr/local/bin/keyhub-server');
      assert.ok(client !== undefined, 'the image writes /usr/local/bin/keyhub');
      assert.ok(server !== undefined, 'the image writes /usr/local/bin/keyhub-server');
      assert.equal(wrapperTarget(client, 'keyhub'), hubBinInImage('keyhub'), '`keyhub` runs the client, hub/cli/dist/main.js');
      assert.equal(wrapperTarget(server, 'keyhub-server'), hubBinInImage('keyhub-server'), '`keyhub-server` runs the server, hub/dist/main.js');
      for (const w of ['keyhub', 'keyhub-server']) {
        assert.ok(
          runsOf(runtime).some((r) => r.split(/&&|;/).some((part) => /\bchmod 0?755\b/.test(part) && part.split(/\s+/).includes(`/usr/local/bin/${w}`))),
          `/usr/local/bin/${w} is made executable`,
        );
      }
      const entry = runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT').pop();
      assert.ok(entry);
      assert.deepEqual(JSON.parse(entry.args) as unknown, ['node', '/app/hub/dist/main.js'], 'the entry point is the server');
    });

    it('exposes the API port and the health port', function () {
      const hub = hubServices[0];
      assert.ok(hub);
      const exposed = runtime.instructions
        .filter((i) => i.keyword === 'EXPOSE')
        .flatMap((i) => i.args.split(/\s+/))
        .map((p) => p.replace(/\/tcp$/, ''));
      assert.ok(exposed.includes(String(hubConfigOf(hub).api.port)), `EXPOSE ${hubConfigOf(hub).api.port} (api.port)`);
      assert.ok(exposed.includes(hub.environment.KEYHUB_HTTP_PORT ?? ''), `EXPOSE ${hub.environment.KEYHUB_HTTP_PORT} (KEYHUB_HTTP_PORT)`);
    });

    it("hub-token.sh hands over to the server, by default with init's token and certificate files", function () {
      const text = readFileSync(path.join(DOCKER, 'scripts', 'hub-token.sh'), 'utf8');
      const execs = [...text.matchAll(/\bexec node (\S+) "\$@"/g)].map((m) => m[1]);
      assert.ok(execs.length >= 1, 'hub-token.sh execs node');
      const server = /^KEYHUB_SERVER_MAIN=(\S+)$/m.exec(text)?.[1];
      for (const e of execs) assert.ok(e === hubBinInImage('keyhub-server') || (e === '"$KEYHUB_SERVER_MAIN"' && server === hubBinInImage('keyhub-server')), `hub-token.sh runs ${e}, not the server`);
      const defaults = /set -- init ([^\n]*)/.exec(text)?.[1] ?? '';
      assert.match(defaults, /--admin-token-file\s/, 'the default init names --admin-token-file');
      assert.match(defaults, /--ca-cert-out\s/, 'the default init names --ca-cert-out');
    });

    it('nothing in docker/ refers to the old hub CLI (hub/dist/cli)', function () {
      const walk = (dir: string): string[] =>
        readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
          const full = path.join(dir, e.name);
          if (e.isDirectory()) return e.name === 'secrets' ? [] : walk(full);
          return e.isFile() ? [full] : [];
        });
      for (const file of walk(DOCKER)) {
        assert.doesNotMatch(readFileSync(file, 'utf8'), /hub\/dist\/cli\b/, `${path.relative(REPO, file)} refers to hub/dist/cli, which no longer exists`);
      }
    });
  });

  describe('entrypoint scripts', function () {
    for (const script of ['hub-token.sh', 'listener-entrypoint.sh']) {
      it(`${script} is valid sh`, function () {
        const file = path.join(DOCKER, 'scripts', script);
        assert.ok(existsSync(file));
        assert.match(readFileSync(file, 'utf8'), /^#!\/bin\/sh\n/);
        const r = spawnSync('sh', ['-n', file], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
      });
    }
  });
});
