import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { connect, jwtAuthenticator, type NatsConnection } from 'nats';
import { Client } from 'pg';
import { STREAMS, subjects } from '@keyhub/protocol';
import { pkcs11Tool } from '../env';
import { LISTENER_CLI, ManagedProcess, type Deployment } from '../harness/deployment';
import { siteLifecycleDeployment } from './site-lifecycle-deployment';

interface SiteKey {
  keyName: string;
  version: number;
  target: string;
  state: string;
  heldElsewhere: boolean;
}
interface Decommission {
  state: string;
  held: SiteKey[];
  heldOnlyHere: SiteKey[];
  destroyCommands: number;
  destroysOutstanding: number;
  cancelledDistributions: number;
  revokedKeks: number;
  revokedNatsKeys: number;
}

/**
 * Decommissioning, end to end with real parts: a forced decommission cuts
 * the site's live NATS connection, refuses its next one, and the packages
 * queued for it before never import anywhere; a decommission of a reachable
 * site destroys what it holds first (urgent-lane commands and their
 * receipts), then revokes it.
 */
describe('end to end: decommissioning a site', function () {
  this.timeout(240_000);
  let d: Deployment;
  let nc: NatsConnection;
  let pg: Client;
  const open: NatsConnection[] = [];

  before(async () => {
    d = await siteLifecycleDeployment();
    await Promise.all([d.enrollListener('site-b'), d.enrollListener('site-d')]);
    nc = await d.natsConnect();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    for (const c of open) await c.close().catch(() => undefined);
    await nc?.close();
    await pg?.end();
    for (const site of ['site-b', 'site-d']) await d?.stopListener(site).catch(() => undefined);
  });

  async function push(key: string, to: string[]): Promise<void> {
    await d.keyhubJson(['key', 'create', key, '--alg', 'AES-256']);
    for (const site of to) {
      const r = await d.keyhub(['distribute', key, '--to', site, '--wait', '--timeout', '60']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
  }

  async function tokenLabels(site: string): Promise<string[]> {
    const token = d.site(site).token;
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return [...r.stdout.matchAll(/label:\s+(\S+)/g)].map((m) => m[1]);
  }

  async function asSite(id: string): Promise<NatsConnection> {
    const home = d.site(id).home;
    const jwt = (await readFile(path.join(home, 'nats-user.jwt'), 'utf8')).trim();
    const seed = (await readFile(path.join(home, 'nats-user.nk'), 'utf8')).trim();
    const c = await connect({ ...d.natsTransport(), authenticator: jwtAuthenticator(jwt, new TextEncoder().encode(seed)), inboxPrefix: `_INBOX_${id}`, maxReconnectAttempts: 0 });
    open.push(c);
    return c;
  }

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const rows = (keys: SiteKey[]) => keys.map((k) => [k.keyName, k.version, k.target, k.heldElsewhere]);

  describe('forced, with packages queued for the site', () => {
    let r: Decommission;
    let live: NatsConnection;
    let closed: Promise<void | Error>;

    before(async () => {
      await push('dc-shared', ['site-b', 'site-d']);
      await push('dc-only', ['site-b']);
      // Queued while the site is offline: in the stream, never pulled.
      await d.stopListener('site-b');
      await d.keyhubJson(['key', 'create', 'dc-queued', '--alg', 'AES-256']);
      const q = await d.keyhub(['distribute', 'dc-queued', '--to', 'site-b']);
      assert.equal(q.code, 0, q.stdout + q.stderr);
      const jsm = await nc.jetstreamManager();
      await waitFor('the queued package in the stream', () =>
        jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.toListener('site-b', 'package') }).then(
          () => true,
          () => undefined,
        ),
      );
      // The site's identity, connected live (as its agent would be).
      live = await asSite('site-b');
      closed = live.closed();
      r = await d.keyhubJson<Decommission>(['listener', 'decommission', 'site-b', '--force', '--reason', 'e2e']);
    });

    it('records what the site held and lists what only it held, for re-keying', () => {
      assert.equal(r.state, 'decommissioned');
      assert.deepEqual(rows(r.held), [
        ['dc-only', 1, 'hsm', false],
        ['dc-queued', 1, 'hsm', false],
        ['dc-shared', 1, 'hsm', true],
      ]);
      assert.deepEqual(rows(r.heldOnlyHere), [
        ['dc-only', 1, 'hsm', false],
        ['dc-queued', 1, 'hsm', false],
      ]);
      assert.equal(r.destroyCommands, 0, 'forced: nothing is sent to the site');
      assert.equal(r.revokedKeks, 1);
      assert.ok(r.cancelledDistributions >= 1);
      assert.ok(r.revokedNatsKeys >= 1);
    });

    it("cuts the site's live NATS connection and refuses its next one", async () => {
      const err = await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('connection not cut within 10 s')), 10_000))]);
      assert.match(String((err as Error | undefined)?.message ?? err), /revoked|authori[sz]ation/i);
      await assert.rejects(asSite('site-b'), /authori[sz]ation|revoked/i);
    });

    it('revokes its root KEK on the hub (blob wiped), cancels what was queued for it, and removes its messages and consumer from the stream', async () => {
      const keks = await pg.query(`SELECT state, length(wrapped)::int AS len FROM keks WHERE listener_id = 'site-b'`);
      assert.deepEqual(keks.rows, [{ state: 'revoked', len: 0 }]);
      const dist = await pg.query(`SELECT d.state, d.error_code FROM distributions d JOIN key_versions kv ON kv.id = d.key_version_id JOIN keys k ON k.id = kv.key_id WHERE k.name = 'dc-queued'`);
      assert.deepEqual(dist.rows, [{ state: 'superseded', error_code: 'LISTENER_DECOMMISSIONED' }]);
      const jsm = await nc.jetstreamManager();
      await waitFor('the stream clean-up', async () => {
        const left = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.toListener('site-b', 'package') }).then(
          () => true,
          () => false,
        );
        const consumer = await jsm.consumers.info(STREAMS.down.name, subjects.listenerConsumer('site-b')).then(
          () => true,
          () => false,
        );
        return left || consumer ? undefined : true;
      });
      const audit = await pg.query(
        `SELECT action FROM audit_events WHERE subject = 'listener:site-b' AND action IN ('kek.revoked', 'listener.decommission_started', 'listener.decommissioned') ORDER BY seq`,
      );
      assert.deepEqual(
        audit.rows.map((x) => x.action),
        ['kek.revoked', 'listener.decommission_started', 'listener.decommissioned'],
      );
    });

    it('the packages queued before never import anywhere: the site, started again, is refused and its token gains nothing', async () => {
      const before = await tokenLabels('site-b');
      const site = d.site('site-b');
      const agent = new ManagedProcess(LISTENER_CLI, ['--home', site.home, 'run'], site.env, 'decommissioned listener');
      await Promise.race([agent.exited, new Promise((r) => setTimeout(r, 6000))]);
      if (agent.child.exitCode === null) await agent.stop();
      assert.deepEqual(await tokenLabels('site-b'), before);
      assert.ok(!before.some((l) => l.startsWith('dc-queued')));
      assert.ok(!(await tokenLabels('site-d')).some((l) => l.startsWith('dc-queued')));
      const dist = await pg.query(`SELECT d.state FROM distributions d JOIN key_versions kv ON kv.id = d.key_version_id JOIN keys k ON k.id = kv.key_id WHERE k.name = 'dc-queued'`);
      assert.deepEqual(dist.rows, [{ state: 'superseded' }], 'no receipt ever confirmed it');
      assert.match(agent.output, /BUS_UNAVAILABLE|authori[sz]ation|revoked/i, 'the agent was refused by NATS');
    });

    it('a decommissioned site is final: it cannot be registered, re-keyed or enrolled again', async () => {
      for (const args of [
        ['listener', 'register', 'site-b', '--out', path.join(d.dir.path, 'b-again.creds')],
        ['listener', 'rekey', 'site-b', '--compromised'],
      ]) {
        const x = await d.keyhub(['--json', ...args]);
        assert.notEqual(x.code, 0);
        assert.match(x.stdout + x.stderr, /LISTENER_STATE_INVALID/);
      }
    });
  });

  describe('reachable (after the forced one)', () => {
    it('a reachable site: destroy commands go out first, the identity is revoked once they are confirmed, and nothing it held is left in its token', async () => {
      await push('dc-d-only', ['site-d']);
      assert.ok((await tokenLabels('site-d')).some((l) => l.startsWith('dc-d-only')));
      const r = await d.keyhubJson<Decommission & { deadline: string | null }>(['listener', 'decommission', 'site-d', '--timeout', '120']);
      assert.equal(r.state, 'decommissioning');
      assert.equal(r.destroyCommands, r.held.length);
      assert.deepEqual(
        rows(r.heldOnlyHere).map((x) => x[0]),
        ['dc-d-only', 'dc-shared'],
        'dc-shared was held at site-b too, which is decommissioned: only here now',
      );
      await d.waitForListenerState('site-d', 'decommissioned', 60_000);
      const done = await pg.query(`SELECT details FROM audit_events WHERE action = 'listener.decommissioned' AND subject = 'listener:site-d'`);
      assert.equal(done.rows[0].details.destroysOutstanding, 0);
      const labels = await tokenLabels('site-d');
      assert.ok(!labels.some((l) => l.startsWith('dc-d-only') || l.startsWith('dc-shared')), labels.join(','));
      // The revocation reaches the servers with the next account update (within about a second).
      const refusal = await waitFor('site-d refused by NATS', () =>
        asSite('site-d').then(
          async (c) => void (await c.close()),
          (err: unknown) => err,
        ),
      );
      assert.match(String(refusal), /authori[sz]ation|revoked/i);
    });
  });
});
