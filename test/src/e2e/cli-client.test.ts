import { strict as assert } from 'node:assert';
import { builtinModules } from 'node:module';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Client } from 'pg';
import { api } from '@keyhub/protocol';
import { run, type ExecResult } from '../env';
import { Deployment, HUB_CLI } from '../harness/deployment';

/*
 * The `keyhub` operator CLI as a pure client of the hub's HTTPS API: it never
 * gets a database URL or a PIN, ships none of the server's code, and refuses
 * bad credentials, foreign CAs and plain HTTP before anything changes.
 */

const CLI_DIST = path.dirname(HUB_CLI);
const REPO = path.resolve(CLI_DIST, '../../..');
const HUB_DIST = path.join(REPO, 'hub/dist');
/** Bare module names the compiled client may require, besides Node built-ins and its own files. */
const ALLOWED_PACKAGES = ['@keyhub/protocol', 'commander', 'cli-progress', 'zod'];
const SERVER_ONLY = /^(typeorm|pkcs11js|pg|pg-[a-z-]+|@keyhub\/(hub|shared)|tsyringe|nats|fastify|@fastify\/.*)(\/|$)/;

interface ErrorDoc {
  error: { code: string; message: string };
}
interface CreatedKey {
  id: string;
  name: string;
  kcv: string;
}
interface StatusRow {
  key: string;
  listener: string;
  state: string;
}
interface ListenerRow {
  id: string;
  state: string;
}
interface PtyResult {
  output: string;
  code: number;
  sent: boolean;
}

/*
 * Runs a command in a real pseudo-terminal (Python's pty module), answers a
 * prompt when it appears, and returns everything the terminal showed. The
 * configuration comes on standard input so no secret is on a command line.
 */
const PTY_DRIVER = String.raw`
import json, os, pty, select, signal, sys, time
cfg = json.loads(sys.stdin.read())
pid, fd = pty.fork()
if pid == 0:
    os.execve(cfg['argv'][0], cfg['argv'], cfg['env'])
out = b''
sent = False
deadline = time.time() + cfg['timeout']
while True:
    if time.time() > deadline:
        os.kill(pid, signal.SIGKILL)
        break
    r, _, _ = select.select([fd], [], [], 0.1)
    if fd in r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    if cfg.get('input') is not None and not sent and cfg['prompt'].encode() in out:
        os.write(fd, cfg['input'].encode() + b'\r')
        sent = True
_, status = os.waitpid(pid, 0)
print(json.dumps({'output': out.decode('utf-8', 'replace'), 'code': os.waitstatus_to_exitcode(status), 'sent': sent}))
`;

async function inPty(args: string[], env: NodeJS.ProcessEnv, answer?: { prompt: string; input: string }): Promise<PtyResult> {
  const cfg = { argv: [process.execPath, HUB_CLI, ...args], env, timeout: 60, prompt: answer?.prompt ?? null, input: answer?.input ?? null };
  const r = await run('python3', ['-c', PTY_DRIVER], { input: JSON.stringify(cfg), timeoutMs: 90_000 });
  assert.equal(r.code, 0, `pty driver failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as PtyResult;
}

/** The JSON error document the client prints with --json, and its exit code. */
function assertFails(r: ExecResult, exitCode: number, code: string, what: string): ErrorDoc {
  assert.equal(r.code, exitCode, `${what}: exit ${r.code}, expected ${exitCode}\n${r.stdout}${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const doc = JSON.parse(lines[lines.length - 1]) as ErrorDoc;
  assert.equal(doc.error.code, code, `${what}: ${r.stdout}`);
  return doc;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(full)));
    else if (e.isFile() && e.name.endsWith('.js')) out.push(full);
  }
  return out;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

describe('end to end: the keyhub CLI is only a client of the hub API', function () {
  this.timeout(120_000);
  let d: Deployment;
  let pg: Client;
  let hubFp: string;

  before(async function () {
    this.timeout(180_000);
    d = await Deployment.create(['site-a']);
    hubFp = await d.initHub();
    await d.startHub();
    await d.enrollListener('site-a');
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    await pg?.end();
    await d?.cleanup();
  });

  const officerToken = (): string => d.tokens.get('officer')!;

  /** A fresh token of the officer's, made through the CLI. */
  async function newOfficerToken(description: string): Promise<api.IssuedToken> {
    const r = await d.keyhub(['--json', 'token', 'create', '--ttl', '1h', '--description', description]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { token: api.IssuedToken }).token;
  }

  /** Runs the client with exactly this environment, nothing inherited. */
  function keyhubWith(env: NodeJS.ProcessEnv, args: string[], input?: string): Promise<ExecResult> {
    return run(process.execPath, [HUB_CLI, ...args], { env, timeoutMs: 120_000, input });
  }

  describe('what the client gets and what it is made of', () => {
    it('gets no database URL, no PIN and no SoftHSM configuration in its environment', () => {
      const env = d.clientEnv(officerToken());
      const secrets = [d.db.url, ...d.hsm.tokens.flatMap((t) => [t.pin, t.soPin])];
      for (const [k, v] of Object.entries(env)) {
        assert.doesNotMatch(k, /DATABASE|PIN|SOFTHSM|PGPASS/, `client env has ${k}`);
        for (const s of secrets) assert.ok(!(v ?? '').includes(s), `client env ${k} carries a server secret`);
      }
      assert.deepEqual(Object.keys(env).sort(), ['HOME', 'KEYHUB_ADDR', 'KEYHUB_CACERT', 'KEYHUB_CLI_HOME', 'KEYHUB_TOKEN', 'PATH']);
    });

    it('its compiled code requires nothing of the server: no hub/dist, typeorm, pkcs11js or pg', async () => {
      const builtins = new Set(builtinModules);
      const files = await filesUnder(CLI_DIST);
      assert.ok(files.length > 5, `compiled client files in ${CLI_DIST}`);
      const bad: string[] = [];
      for (const file of files) {
        const text = await readFile(file, 'utf8');
        for (const m of text.matchAll(/\b(?:require|import)\s*\(\s*(["'`])([^"'`]+)\1\s*\)/g)) {
          const spec = m[2];
          const where = `${path.relative(REPO, file)}: ${spec}`;
          if (spec.startsWith('.')) {
            const target = path.resolve(path.dirname(file), spec);
            if (target.startsWith(HUB_DIST + path.sep) || !target.startsWith(CLI_DIST + path.sep)) bad.push(where);
          } else if (SERVER_ONLY.test(spec)) bad.push(where);
          else if (spec.startsWith('node:') || builtins.has(spec)) continue;
          else if (!ALLOWED_PACKAGES.some((p) => spec === p || spec.startsWith(`${p}/`))) bad.push(where);
        }
      }
      assert.deepEqual(bad, [], 'requires outside what the client may use');

      // And transitively: loading every module of the client (main only runs as the entry point) pulls in none of the server.
      const probe = `require(${JSON.stringify(HUB_CLI)}); process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
      const r = await run(process.execPath, ['-e', probe], { env: { PATH: process.env.PATH, HOME: d.dir.path } });
      assert.equal(r.code, 0, r.stderr);
      const loaded = JSON.parse(r.stdout) as string[];
      assert.ok(
        loaded.some((f) => f.startsWith(CLI_DIST)),
        'the probe loaded the client',
      );
      const serverSide = loaded.filter(
        (f) =>
          f.startsWith(HUB_DIST + path.sep) ||
          /[/\\]node_modules[/\\](typeorm|pkcs11js|pg|tsyringe|nats|fastify|@keyhub[/\\](hub|shared))[/\\]/.test(f) ||
          /[/\\](shared|hub[/\\](?!cli[/\\]))dist[/\\]/.test(f),
      );
      assert.deepEqual(serverSide, [], 'server modules loaded by the client');
    });
  });

  it('runs the whole flow through the CLI only, and verifies an export offline with no hub settings at all', async () => {
    const created = JSON.parse((await d.keyhub(['--json', 'key', 'create', 'cli-flow-key', '--alg', 'AES-256'])).stdout) as CreatedKey;
    assert.equal(created.name, 'cli-flow-key');
    const push = await d.keyhub(['distribute', 'cli-flow-key', '--to', 'site-a', '--wait', '--timeout', '60']);
    assert.equal(push.code, 0, push.stdout + push.stderr);
    assert.match(push.stdout, /confirmed 1\/1/);

    const status = await d.keyhub(['--json', 'status', 'cli-flow-key']);
    assert.equal(status.code, 0, status.stderr);
    const rows = JSON.parse(status.stdout) as StatusRow[];
    assert.deepEqual(
      rows.map((r) => [r.listener, r.state]),
      [['site-a', 'confirmed']],
    );
    const human = await d.keyhub(['status', 'cli-flow-key']);
    assert.match(human.stdout, /cli-flow-key.*site-a.*confirmed/);

    const listeners = await d.keyhub(['--json', 'listener', 'list']);
    assert.equal(listeners.code, 0, listeners.stderr);
    assert.equal((JSON.parse(listeners.stdout) as ListenerRow[]).find((l) => l.id === 'site-a')?.state, 'active');

    const verify = await d.keyhub(['--json', 'audit', 'verify', '--fingerprint', hubFp], { as: 'auditor' });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.equal((JSON.parse(verify.stdout) as { ok: boolean }).ok, true);

    const file = path.join(d.dir.path, 'audit-export.jsonl');
    const exp = await d.keyhub(['audit', 'export', '--out', file], { as: 'auditor' });
    assert.equal(exp.code, 0, exp.stdout + exp.stderr);

    // Offline: no address, no CA, no token, an empty home.
    const bareHome = path.join(d.dir.path, 'bare-home');
    await mkdir(bareHome);
    const offline = await keyhubWith({ PATH: process.env.PATH, HOME: bareHome }, ['--json', 'audit', 'verify', '--file', file, '--fingerprint', hubFp]);
    assert.equal(offline.code, 0, offline.stdout + offline.stderr);
    const report = JSON.parse(offline.stdout) as { ok: boolean; events: number; source: string };
    assert.equal(report.ok, true);
    assert.equal(report.source, file);
    assert.ok(report.events > 5);
    const wrongPin = await keyhubWith({ PATH: process.env.PATH, HOME: bareHome }, ['--json', 'audit', 'verify', '--file', file, '--fingerprint', 'ffff-'.repeat(15) + 'ffff']);
    assertFails(wrongPin, 5, 'HUB_KEY_NOT_PINNED', 'offline verify against another fingerprint');
  });

  describe('credentials the hub does not accept change nothing', () => {
    let expired: api.IssuedToken;
    let revoked: api.IssuedToken;
    let revokeRun: ExecResult;

    before(async () => {
      const k = await d.keyhub(['key', 'create', 'auth-probe', '--alg', 'AES-128']);
      assert.equal(k.code, 0, k.stdout + k.stderr);
      expired = await newOfficerToken('to expire');
      revoked = await newOfficerToken('to revoke');
      await pg.query(`UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1`, [expired.id]);
      revokeRun = await d.keyhub(['token', 'revoke', revoked.id]);
      assert.equal(revokeRun.code, 0, revokeRun.stdout + revokeRun.stderr);
    });

    it('token revoke by its owner says so and leaves an audit event naming the owner', async () => {
      assert.match(revokeRun.stdout, new RegExp(`^token ${revoked.id} revoked$`, 'm'));
      const row = await pg.query<{ revoked_by: string | null; revoked: boolean }>('SELECT revoked_by, revoked_at IS NOT NULL AS revoked FROM api_tokens WHERE id = $1', [revoked.id]);
      assert.deepEqual(row.rows[0], { revoked_by: 'officer', revoked: true });
      const ev = await pg.query<{ actor: string }>(`SELECT actor FROM audit_events WHERE action = 'token.revoked' AND subject = $1`, [`token:${revoked.id}`]);
      assert.deepEqual(
        ev.rows.map((r) => r.actor),
        ['officer'],
        'one token.revoked audit event',
      );
      const again = await d.keyhub(['token', 'revoke', revoked.id]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(again.stdout, /was already revoked/);
    });

    async function snapshot(): Promise<Record<string, string>> {
      const q = async (sql: string): Promise<string> => String((await pg.query<{ n: string }>(sql)).rows[0].n);
      return {
        keys: await q('SELECT count(*) AS n FROM keys'),
        keyVersions: await q('SELECT count(*) AS n FROM key_versions'),
        distributions: await q('SELECT count(*) AS n FROM distributions'),
        distributionsUpdated: await q("SELECT coalesce(max(updated_at)::text, '') AS n FROM distributions"),
        packages: await q('SELECT count(*) AS n FROM packages'),
        // Signed checkpoints also pass through the outbox, in the background: count rows, not its sequence.
        outbox: await q('SELECT count(*) AS n FROM outbox'),
        auditEvents: await q('SELECT count(*) AS n FROM audit_events'),
        tokens: await q('SELECT count(*) AS n FROM api_tokens'),
      };
    }

    function randomSecret(): string {
      return randomBytes(32).toString('base64url');
    }

    it('wrong, expired, revoked and malformed tokens: exit 9 with the reason, and no row changes', async () => {
      const officerId = api.parseApiToken(officerToken())!.id;
      const cases: Array<{ what: string; token: string; code: string }> = [
        { what: 'a known id with a random secret', token: api.formatApiToken(officerId, randomSecret()), code: 'AUTH_INVALID' },
        { what: 'an unknown id', token: api.formatApiToken(randomBytes(16).toString('hex'), randomSecret()), code: 'AUTH_INVALID' },
        { what: 'an expired token', token: expired.token, code: 'AUTH_EXPIRED' },
        { what: 'a revoked token', token: revoked.token, code: 'AUTH_REVOKED' },
        { what: 'a malformed token', token: 'khub_not-a-token', code: 'AUTH_INVALID' },
      ];
      const before = await snapshot();
      for (const c of cases) {
        const env = { KEYHUB_TOKEN: c.token };
        const create = await d.keyhub(['--json', 'key', 'create', 'must-not-exist', '--alg', 'AES-256'], { as: 'nobody', env });
        assertFails(create, 9, c.code, `key create with ${c.what}`);
        const push = await d.keyhub(['--json', 'distribute', 'auth-probe', '--to', 'site-a'], { as: 'nobody', env });
        assertFails(push, 9, c.code, `distribute with ${c.what}`);
        assert.ok(!(create.stdout + create.stderr + push.stdout + push.stderr).includes(c.token), `the client does not print ${c.what}`);
      }
      assert.deepEqual(await snapshot(), before);
      const probe = await pg.query(`SELECT count(*)::int AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = 'auth-probe'`);
      assert.equal(probe.rows[0].n, 0, 'auth-probe was never distributed');
    });

    it('no token at all: AUTH_MISSING, exit 9', async () => {
      const empty = path.join(d.dir.path, 'no-login-home');
      const r = await d.keyhub(['--json', 'key', 'create', 'must-not-exist', '--alg', 'AES-256'], { as: 'nobody', env: { KEYHUB_CLI_HOME: empty } });
      assertFails(r, 9, 'AUTH_MISSING', 'key create without a token');
      const k = await pg.query(`SELECT count(*)::int AS n FROM keys WHERE name = 'must-not-exist'`);
      assert.equal(k.rows[0].n, 0);
    });

    it('a key officer calling an admin command: PERMISSION_DENIED, exit 10', async () => {
      assertFails(await d.keyhub(['--json', 'operator', 'list']), 10, 'PERMISSION_DENIED', 'operator list as key officer');
      const asAdmin = await d.keyhub(['--json', 'operator', 'list'], { as: 'admin' });
      assert.equal(asAdmin.code, 0, asAdmin.stdout + asAdmin.stderr);
    });
  });

  describe('transport', () => {
    it('refuses a server whose certificate is not from the pinned CA, before sending the token', async () => {
      const caDir = path.join(d.dir.path, 'foreign-ca');
      await mkdir(caDir);
      const cert = path.join(caDir, 'ca.pem');
      const gen = await run('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        path.join(caDir, 'ca.key'),
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=not the keyhub CA',
      ]);
      assert.equal(gen.code, 0, gen.stderr);

      // A token never used before: its last_used_at tells whether the hub ever saw it.
      const fresh = await newOfficerToken('tls probe');
      const lastUsed = async (): Promise<Date | null> => (await pg.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_tokens WHERE id = $1', [fresh.id])).rows[0].last_used_at;
      assert.equal(await lastUsed(), null);

      const r = await d.keyhub(['--json', 'whoami'], { as: 'nobody', env: { KEYHUB_TOKEN: fresh.token, KEYHUB_CACERT: cert } });
      assertFails(r, 5, 'TLS_UNTRUSTED', 'whoami against a foreign CA');
      const k = await d.keyhub(['--json', 'key', 'create', 'must-not-exist', '--alg', 'AES-256'], { as: 'nobody', env: { KEYHUB_TOKEN: fresh.token, KEYHUB_CACERT: cert } });
      assertFails(k, 5, 'TLS_UNTRUSTED', 'key create against a foreign CA');
      assert.equal(await lastUsed(), null, 'the hub never received the token');

      // The same token with the right CA does reach the hub: the check above can tell.
      const ok = await d.keyhub(['--json', 'whoami'], { as: 'nobody', env: { KEYHUB_TOKEN: fresh.token } });
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.notEqual(await lastUsed(), null);
    });

    it('refuses an http:// address: CONFIG_INVALID, exit 2', async () => {
      const r = await d.keyhub(['--json', 'whoami'], { env: { KEYHUB_ADDR: d.apiAddr.replace(/^https:/, 'http:') } });
      assertFails(r, 2, 'CONFIG_INVALID', 'whoami over http');
    });
  });

  describe('keyhub login', () => {
    let token: string;
    const loginHome = (): string => path.join(d.dir.path, 'login-user', '.keyhub');

    before(async () => {
      token = await d.createOperator('terminal', ['auditor']);
    });

    it('reads the token with no echo in a real terminal, stores it owner-only, and later calls use it', async () => {
      const secret = api.parseApiToken(token)!.secret;
      const home = loginHome();
      const env = { PATH: process.env.PATH, HOME: path.dirname(home), KEYHUB_CLI_HOME: home };
      const r = await inPty(['login', '--addr', d.apiAddr, '--ca-cert', d.caCertPath], env, { prompt: 'token: ', input: token });
      assert.ok(r.sent, `the prompt never appeared:\n${r.output}`);
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /token: /);
      assert.match(r.output, /logged in to .* as terminal/);
      assert.ok(!r.output.includes(secret), `the terminal showed the token's secret:\n${r.output}`);
      assert.ok(!r.output.includes(secret.slice(0, 8)), 'not even part of the secret is echoed');

      assert.equal((await stat(home)).mode & 0o777, 0o700, 'KEYHUB_CLI_HOME is 0700');
      for (const f of ['token', 'addr', 'ca.pem']) assert.equal((await stat(path.join(home, f))).mode & 0o777, 0o600, `${f} is 0600`);
      assert.equal((await readFile(path.join(home, 'token'), 'utf8')).trim(), token);
      assert.equal((await readFile(path.join(home, 'addr'), 'utf8')).trim(), d.apiAddr);
      assert.equal((await readFile(path.join(home, 'ca.pem'), 'utf8')).trim(), (await readFile(d.caCertPath, 'utf8')).trim());

      // No KEYHUB_TOKEN, KEYHUB_ADDR or KEYHUB_CACERT: everything comes from what login stored.
      const who = await keyhubWith(env, ['--json', 'whoami']);
      assert.equal(who.code, 0, who.stdout + who.stderr);
      const me = JSON.parse(who.stdout) as api.Whoami;
      assert.equal(me.operator.name, 'terminal');
      assert.deepEqual(me.roles, ['auditor']);

      // A stored token others can read is a leaked token: refused, not used.
      await chmod(path.join(home, 'token'), 0o644);
      assertFails(await keyhubWith(env, ['--json', 'whoami']), 2, 'CONFIG_INVALID', 'whoami with a 0644 token file');
      await chmod(path.join(home, 'token'), 0o600);
      assert.equal((await keyhubWith(env, ['--json', 'whoami'])).code, 0);
    });

    it('KEYHUB_TOKEN_FILE is used when owner-only and refused when readable by others', async () => {
      const file = path.join(d.dir.path, 'officer.token');
      await writeFile(file, `${officerToken()}\n`, { mode: 0o600 });
      const env = { ...d.clientEnv(undefined), KEYHUB_CLI_HOME: path.join(d.dir.path, 'token-file-home'), KEYHUB_TOKEN_FILE: file };
      const ok = await keyhubWith(env, ['--json', 'whoami']);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.equal((JSON.parse(ok.stdout) as api.Whoami).operator.name, 'officer');
      await chmod(file, 0o644);
      assertFails(await keyhubWith(env, ['--json', 'whoami']), 2, 'CONFIG_INVALID', 'whoami with a 0644 KEYHUB_TOKEN_FILE');
    });

    it('login --token-stdin with a wrong token exits 9 and stores nothing', async () => {
      const wrong = api.formatApiToken(api.parseApiToken(token)!.id, randomBytes(32).toString('base64url'));
      // Into a fresh home: nothing is created.
      const freshHome = path.join(d.dir.path, 'login-fresh', '.keyhub');
      const fresh = await keyhubWith(
        { PATH: process.env.PATH, HOME: path.dirname(freshHome), KEYHUB_CLI_HOME: freshHome },
        ['--json', 'login', '--addr', d.apiAddr, '--ca-cert', d.caCertPath, '--token-stdin'],
        `${wrong}\n`,
      );
      assertFails(fresh, 9, 'AUTH_INVALID', 'login with a wrong token');
      assert.equal(await exists(path.join(freshHome, 'token')), false, 'no token stored');
      assert.equal(await exists(path.join(freshHome, 'addr')), false, 'no address stored');

      // Over an existing login: the stored token is left as it was.
      const home = loginHome();
      const env = { PATH: process.env.PATH, HOME: path.dirname(home), KEYHUB_CLI_HOME: home };
      const over = await keyhubWith(env, ['--json', 'login', '--addr', d.apiAddr, '--ca-cert', d.caCertPath, '--token-stdin'], `${wrong}\n`);
      assertFails(over, 9, 'AUTH_INVALID', 'login over an existing one with a wrong token');
      assert.equal((await readFile(path.join(home, 'token'), 'utf8')).trim(), token);
    });
  });

  it('login --hub-fingerprint pins the hub key: a wrong one is refused, the right one makes audit verify work without --fingerprint', async () => {
    const auditorToken = d.tokens.get('auditor')!;
    const home = path.join(d.dir.path, 'login-pin', '.keyhub');
    const env = { PATH: process.env.PATH, HOME: path.dirname(home), KEYHUB_CLI_HOME: home };
    const login = (fp: string) => keyhubWith(env, ['--json', 'login', '--addr', d.apiAddr, '--ca-cert', d.caCertPath, '--token-stdin', '--hub-fingerprint', fp], `${auditorToken}\n`);
    const wrongFp = d.hubFingerprint.replace(/[0-9a-f]/, (c) => (c === '0' ? '1' : '0'));
    assertFails(await login(wrongFp), 5, 'HUB_KEY_NOT_PINNED', 'login pinning another hub key');
    assert.equal(await exists(path.join(home, 'token')), false, 'nothing stored after the refusal');
    assertFails(
      await keyhubWith({ ...env, KEYHUB_ADDR: d.apiAddr, KEYHUB_CACERT: d.caCertPath, KEYHUB_TOKEN: auditorToken }, ['--json', 'audit', 'verify']),
      5,
      'HUB_KEY_NOT_PINNED',
      'verify with nothing pinned',
    );
    const ok = await login(d.hubFingerprint);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const verify = await keyhubWith(env, ['--json', 'audit', 'verify']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.equal((JSON.parse(verify.stdout) as { trust: string }).trust, 'fingerprint');
  });

  describe('tokens', () => {
    it('token create prints the secret once; token list shows the id and never a secret', async () => {
      const r = await d.keyhub(['token', 'create', '--ttl', '1h', '--role', 'key-officer', '--description', 'listed']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const printed = r.stdout.match(api.TOKEN_LIKE) ?? [];
      assert.equal(printed.length, 1, `exactly one token printed:\n${r.stdout}`);
      const issued = api.parseApiToken(printed[0])!;
      assert.match(r.stdout, new RegExp(`token id:\\s+${issued.id}`));
      assert.match(r.stdout, /scope:\s+key-officer/);

      // The new token works, scoped to key-officer.
      const who = await d.keyhub(['--json', 'whoami'], { as: 'nobody', env: { KEYHUB_TOKEN: printed[0] } });
      assert.equal(who.code, 0, who.stdout + who.stderr);
      assert.deepEqual((JSON.parse(who.stdout) as api.Whoami).roles, ['key-officer']);

      for (const args of [
        ['token', 'list'],
        ['--json', 'token', 'list'],
      ]) {
        const list = await d.keyhub(args);
        assert.equal(list.code, 0, list.stdout + list.stderr);
        assert.ok(list.stdout.includes(issued.id), `${args.join(' ')} shows the id`);
        assert.ok(!list.stdout.includes(issued.secret), `${args.join(' ')} shows no secret`);
        assert.doesNotMatch(list.stdout, new RegExp(api.TOKEN_LIKE.source));
        assert.ok(!list.stdout.includes(api.parseApiToken(officerToken())!.secret));
      }
    });

    it('an officer cannot mint a token with a role they do not hold: ROLE_ESCALATION, exit 10', async () => {
      const before = (await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens')).rows[0].n;
      assertFails(await d.keyhub(['--json', 'token', 'create', '--ttl', '1h', '--role', 'admin']), 10, 'ROLE_ESCALATION', 'officer asking for an admin token');
      assert.equal((await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens')).rows[0].n, before);
    });
  });

  it('distribute --wait shows a progress bar on a terminal only', async () => {
    for (const name of ['progress-pipe', 'progress-tty']) {
      const k = await d.keyhub(['key', 'create', name, '--alg', 'AES-128']);
      assert.equal(k.code, 0, k.stdout + k.stderr);
    }
    const piped = await d.keyhub(['distribute', 'progress-pipe', '--to', 'site-a', '--wait']);
    assert.equal(piped.code, 0, piped.stdout + piped.stderr);
    assert.doesNotMatch(piped.stderr, /waiting/);
    assert.doesNotMatch(piped.stderr + piped.stdout, /[\u2588\u2591]/, 'no bar characters in a pipe');
    assert.ok(!(piped.stderr + piped.stdout).includes('\u001b['), 'no escape sequences in a pipe');
    assert.match(piped.stdout, /confirmed 1\/1/);

    const tty = await inPty(['distribute', 'progress-tty', '--to', 'site-a', '--wait'], d.clientEnv(officerToken()));
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, /waiting .*1\/1 done/);
    assert.match(tty.output, /confirmed 1\/1/);
  });
});
