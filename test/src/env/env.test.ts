import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect, type NatsConnection, type PubAck } from 'nats';
import { Client } from 'pg';
import {
  createSoftHsm,
  createTestDatabase,
  databaseExists,
  pkcs11Tool,
  sleep,
  startNatsCluster,
  startNatsServer,
  type NatsClusterHandle,
  type NatsServerHandle,
  type SoftHsmEnv,
  type TestDatabase,
} from './index';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('test environment', function () {
  describe('single NATS server', function () {
    this.timeout(20_000);
    let server: NatsServerHandle | undefined;
    let nc: NatsConnection | undefined;

    after(async () => {
      await nc?.close();
      await server?.cleanup();
    });

    it('starts with JetStream and acks a publish', async () => {
      server = await startNatsServer({ name: 'env-selftest' });
      assert.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
      nc = await connect({ servers: server.url });
      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({ name: 'SELFTEST', subjects: ['selftest.>'] });
      const ack = await nc.jetstream().publish('selftest.a', Buffer.from('hello'));
      assert.equal(ack.stream, 'SELFTEST');
      assert.equal(ack.seq, 1);
      assert.equal(ack.duplicate, false);
    });

    it('restarts on the same port and keeps the stream', async () => {
      assert.ok(server !== undefined && nc !== undefined);
      await nc.close();
      const oldPid = server.pid;
      await server.restart();
      assert.notEqual(server.pid, oldPid);
      assert.equal(processAlive(oldPid), false);
      nc = await connect({ servers: server.url });
      const info = await (await nc.jetstreamManager()).streams.info('SELFTEST');
      assert.equal(info.state.messages, 1);
    });

    it('cleanup stops the process and removes the temp dir', async () => {
      assert.ok(server !== undefined && nc !== undefined);
      await nc.close();
      nc = undefined;
      const { pid, dir } = server;
      await server.cleanup();
      server = undefined;
      assert.equal(processAlive(pid), false);
      assert.equal(existsSync(dir), false);
    });
  });

  describe('SoftHSM', function () {
    this.timeout(20_000);
    let hsm: SoftHsmEnv | undefined;

    after(async () => {
      await hsm?.cleanup();
    });

    it('initializes one token per label, visible to pkcs11-tool', async () => {
      hsm = await createSoftHsm(['keyhub-selftest-a', 'keyhub-selftest-b']);
      assert.equal(hsm.tokens.length, 2);
      assert.notEqual(hsm.tokens[0].pin, hsm.tokens[1].pin);
      const res = await pkcs11Tool(hsm, ['--list-slots']);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /token label\s*:\s*keyhub-selftest-a\b/);
      assert.match(res.stdout, /token label\s*:\s*keyhub-selftest-b\b/);
    });

    it('accepts the generated user PIN and can add tokens later', async () => {
      assert.ok(hsm !== undefined);
      const added = await hsm.addToken('keyhub-selftest-c');
      const login = await pkcs11Tool(hsm, ['--token-label', added.label, '--login', '--pin', added.pin, '--list-objects']);
      assert.equal(login.code, 0, login.stderr);
      const wrong = await pkcs11Tool(hsm, ['--token-label', added.label, '--login', '--pin', 'not-the-pin', '--list-objects']);
      assert.notEqual(wrong.code, 0);
      const { dir } = hsm;
      await hsm.cleanup();
      hsm = undefined;
      assert.equal(existsSync(dir), false);
    });
  });

  describe('PostgreSQL', function () {
    this.timeout(20_000);
    let db: TestDatabase | undefined;

    after(async () => {
      await db?.drop();
    });

    it('creates a database and drops it even with a session still open', async () => {
      db = await createTestDatabase();
      assert.match(db.name, /^keyhub_test_[0-9a-f]{16}$/);
      const client = new Client({ connectionString: db.url });
      // drop() terminates this session on purpose; without a listener the
      // resulting 'error' event would crash the test process.
      client.on('error', () => undefined);
      await client.connect();
      const res = await client.query<{ db: string }>('SELECT current_database() AS db');
      assert.equal(res.rows[0].db, db.name);
      await db.drop();
      assert.equal(await databaseExists(db.name), false);
      await client.end().catch(() => undefined);
    });
  });

  describe('3-node NATS cluster', function () {
    this.timeout(45_000);
    let cluster: NatsClusterHandle | undefined;
    let nc: NatsConnection | undefined;

    after(async () => {
      await nc?.close();
      await cluster?.cleanup();
    });

    it('keeps accepting R3 publishes after the stream leader is killed', async () => {
      cluster = await startNatsCluster(3);
      assert.equal(cluster.urls.length, 3);
      nc = await connect({ servers: cluster.urls, reconnectTimeWait: 250 });
      const jsm = await nc.jetstreamManager();
      const stream = await jsm.streams.add({ name: 'SELFTEST_R3', subjects: ['r3.>'], num_replicas: 3 });
      assert.equal(stream.config.num_replicas, 3);
      const js = nc.jetstream();
      const first = await js.publish('r3.a', Buffer.from('one'));
      assert.equal(first.seq, 1);

      // Killing the leader (not just any node) proves failover, not only replication.
      const leader = (await jsm.streams.info('SELFTEST_R3')).cluster?.leader;
      const victim = cluster.nodes.find((n) => n.name === leader) ?? cluster.nodes[0];
      await victim.kill9();

      // Retries use a fixed msgID so a publish that was stored but whose ack was
      // lost during failover is deduplicated instead of stored twice.
      const deadline = Date.now() + 20_000;
      let second: PubAck | undefined;
      let lastError: unknown;
      while (second === undefined && Date.now() < deadline) {
        try {
          second = await js.publish('r3.b', Buffer.from('two'), { msgID: 'selftest-second', timeout: 2000 });
        } catch (err) {
          lastError = err;
          await sleep(250);
        }
      }
      assert.ok(second !== undefined, `publish after failover failed: ${String(lastError)}`);
      assert.equal(second.seq, 2);
    });
  });
});
