import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { connect, credsAuthenticator, jwtAuthenticator, nkeys, type NatsConnection } from 'nats';
import { STREAMS, subjects } from '@keyhub/protocol';
import { Deployment } from '../harness/deployment';

/**
 * The NATS permission matrix against a real nats-server running the
 * project's auth configuration (operator/account JWTs from the hub HSM, the
 * full resolver, TLS from the hub CA), and the attacks of issue 10 ("NATS is
 * open to anyone") rerun: each is refused, and the streams are unchanged.
 */
describe('NATS permissions (decentralized auth + TLS)', function () {
  this.timeout(240_000);
  let d: Deployment;
  let admin: NatsConnection;
  const open: NatsConnection[] = [];

  const enc = new TextEncoder();

  async function siteCredentials(id: string): Promise<{ jwt: string; seed: string }> {
    const home = d.site(id).home;
    return { jwt: (await readFile(path.join(home, 'nats-user.jwt'), 'utf8')).trim(), seed: (await readFile(path.join(home, 'nats-user.nk'), 'utf8')).trim() };
  }

  async function asListener(id: string, inboxId = id): Promise<NatsConnection> {
    const c = await siteCredentials(id);
    const nc = await connect({ ...d.natsTransport(), authenticator: jwtAuthenticator(c.jwt, enc.encode(c.seed)), inboxPrefix: `_INBOX_${inboxId}`, maxReconnectAttempts: 0 });
    open.push(nc);
    return nc;
  }

  /** Collects the server's permission errors on a connection (nats.js reports them as status events). */
  function violations(nc: NatsConnection): string[] {
    const seen: string[] = [];
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'error') seen.push(String((s.data as unknown as { message?: string })?.message ?? s.data));
    })();
    return seen;
  }

  async function expectPublishDenied(nc: NatsConnection, seen: string[], subject: string, payload = enc.encode('{}'), reply?: string): Promise<void> {
    const before = seen.length;
    nc.publish(subject, payload, reply ? { reply } : undefined);
    await nc.flush();
    const deadline = Date.now() + 3000;
    while (seen.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(seen.length > before, `publish to ${subject} was not refused`);
    assert.match(seen.slice(before).join(' '), /permission/i, `publish to ${subject}: ${seen.slice(before).join(' ')}`);
  }

  async function expectSubscribeDenied(nc: NatsConnection, subject: string): Promise<void> {
    const err = await new Promise<Error | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), 3000);
      nc.subscribe(subject, { callback: (e) => e && (clearTimeout(t), resolve(e)) });
      void nc.flush();
    });
    assert.ok(err, `subscription to ${subject} was not refused`);
    assert.match(err.message + String((err as { code?: string }).code), /permission/i);
  }

  /** What must not change: every stream's message count and last sequence, every consumer's config. */
  /** Waits until the hub's consumer has acked the UP stream up to `seq` (it took the message off, whatever it made of it). */
  async function untilHubTook(seq: number): Promise<void> {
    const jsm = await admin.jetstreamManager();
    const deadline = Date.now() + 15_000;
    while ((await jsm.consumers.info(STREAMS.up.name, subjects.hubConsumer)).ack_floor.stream_seq < seq) {
      assert.ok(Date.now() < deadline, 'the hub did not take the message off the UP stream');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function streamState(): Promise<string> {
    const jsm = await admin.jetstreamManager();
    const out: unknown[] = [];
    for (const s of [STREAMS.down.name, STREAMS.up.name]) {
      const info = await jsm.streams.info(s);
      const consumers: unknown[] = [];
      for await (const c of jsm.consumers.list(s)) consumers.push({ name: c.name, cfg: { ...c.config, metadata: undefined }, acked: c.ack_floor.stream_seq });
      out.push({ s, msgs: info.state.messages, last: info.state.last_seq, consumers });
    }
    return JSON.stringify(out);
  }

  before(async () => {
    d = await Deployment.create(['site-a', 'site-b']);
    await d.startHub();
    await d.enrollListener('site-a');
    await d.enrollListener('site-b');
    admin = await d.natsConnect();
  });

  after(async () => {
    for (const nc of open) await nc.close().catch(() => undefined);
    await admin?.close().catch(() => undefined);
    await d?.cleanup();
  });

  it('enrolled sites hold their own NATS identity, and their bootstrap credential is revoked', async () => {
    for (const id of ['site-a', 'site-b']) {
      const c = await siteCredentials(id);
      assert.match(c.seed, /^SU/);
      const claims = JSON.parse(Buffer.from(c.jwt.split('.')[1], 'base64url').toString()) as { sub: string; nats: { pub: { allow: string[] }; sub: { allow: string[] } } };
      assert.equal(claims.sub, nkeys.fromSeed(enc.encode(c.seed)).getPublicKey());
      assert.deepEqual(claims.nats.sub.allow, [`_INBOX_${id}.>`]);
      const mode = (await import('node:fs')).statSync(path.join(d.site(id).home, 'nats-user.nk')).mode & 0o777;
      assert.equal(mode, 0o600);
      const boot = await readFile(path.join(d.site(id).home, 'bootstrap.creds'), 'utf8');
      await assert.rejects(connect({ ...d.natsTransport(), authenticator: credsAuthenticator(enc.encode(boot)), maxReconnectAttempts: 0, reconnect: false }), /authori[sz]ation|revoked/i);
    }
  });

  it('refuses anonymous and unknown clients', async () => {
    await assert.rejects(connect({ ...d.natsTransport(), maxReconnectAttempts: 0, reconnect: false }), /authori[sz]ation/i);
    // A well-formed JWT signed by some other account key: not one the servers trust.
    const foreign = nkeys.createAccount();
    const user = nkeys.createUser();
    const b64u = (x: string | Uint8Array) => Buffer.from(x).toString('base64url');
    const head = b64u(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
    const body = b64u(
      JSON.stringify({
        jti: 'X',
        iat: Math.floor(Date.now() / 1000),
        iss: foreign.getPublicKey(),
        name: 'x',
        sub: user.getPublicKey(),
        nats: { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: 'user', version: 2 },
      }),
    );
    const jwt = `${head}.${body}.${b64u(foreign.sign(enc.encode(`${head}.${body}`)))}`;
    await assert.rejects(connect({ ...d.natsTransport(), authenticator: jwtAuthenticator(jwt, user.getSeed()), maxReconnectAttempts: 0, reconnect: false }), /authori[sz]ation/i);
    // Plain TCP without TLS is refused too: the servers require TLS.
    await assert.rejects(connect({ servers: d.natsUrls, maxReconnectAttempts: 0, reconnect: false, timeout: 3000 }));
  });

  it("listener A cannot subscribe to B's subjects, the hub's inbox, or anything but its own inbox", async () => {
    const a = await asListener('site-a');
    for (const s of [subjects.toListenerAll('site-b'), `keyhub.v1.from.site-b.>`, subjects.heartbeat('site-b'), '_INBOX_site-b.>', '_INBOX__hub.>', '_INBOX.>', '>', 'keyhub.v1.>', '$JS.ACK.>']) {
      await expectSubscribeDenied(a, s);
    }
  });

  it("listener A cannot pull, inspect or ack B's consumer, nor read the streams directly", async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const before = await streamState();
    const down = STREAMS.down.name;
    for (const s of [
      `$JS.API.CONSUMER.INFO.${down}.listener-site-b`,
      `$JS.API.CONSUMER.MSG.NEXT.${down}.listener-site-b`,
      `$JS.API.STREAM.INFO.${down}`,
      `$JS.API.STREAM.MSG.GET.${down}`,
      `$JS.API.DIRECT.GET.${down}`,
      `$JS.API.CONSUMER.INFO.${down}.enroll-site-b`,
      `$JS.API.CONSUMER.MSG.NEXT.${STREAMS.up.name}.hub`,
    ]) {
      await expectPublishDenied(a, seen, s);
    }
    await expectPublishDenied(a, seen, `$JS.ACK.${down}.listener-site-b.1.1.1.${Date.now()}000000.0`);
    await expectPublishDenied(a, seen, `$JS.ACK.${STREAMS.up.name}.hub.1.1.1.${Date.now()}000000.0`);
    // Its own consumer, on the other hand, answers.
    const js = a.jetstream();
    const mine = await js.consumers.get(down, 'listener-site-a');
    assert.equal((await mine.info()).name, 'listener-site-a');
    assert.equal(await streamState(), before);
  });

  it("the urgent lane: listener A pulls its own urgent consumer, never B's, and cannot publish on any urgent subject", async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const before = await streamState();
    const down = STREAMS.down.name;
    for (const s of [
      `$JS.API.CONSUMER.INFO.${down}.${subjects.listenerUrgentConsumer('site-b')}`,
      `$JS.API.CONSUMER.MSG.NEXT.${down}.${subjects.listenerUrgentConsumer('site-b')}`,
      subjects.urgent('site-b'),
      subjects.urgent('site-a'),
      subjects.fromListener('site-b', 'command_receipt'),
      subjects.toListener('site-a', 'command'),
    ]) {
      await expectPublishDenied(a, seen, s);
    }
    await expectPublishDenied(a, seen, `$JS.ACK.${down}.${subjects.listenerUrgentConsumer('site-b')}.1.1.1.${Date.now()}000000.0`);
    await expectSubscribeDenied(a, subjects.urgent('site-b'));
    // Its own urgent consumer answers (the hub made it with the normal one).
    const mine = await a.jetstream().consumers.get(down, subjects.listenerUrgentConsumer('site-a'));
    assert.equal((await mine.info()).config.filter_subject, subjects.urgent('site-a'));
    assert.equal(await streamState(), before);
  });

  it('listener A cannot publish a receipt, a heartbeat or an enrollment as B', async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const before = await streamState();
    await expectPublishDenied(a, seen, subjects.fromListener('site-b', 'receipt'));
    await expectPublishDenied(a, seen, subjects.fromListener('site-b', 'enroll'));
    await expectPublishDenied(a, seen, subjects.fromListener('site-b', 'kek_confirm'));
    await expectPublishDenied(a, seen, subjects.fromListener('site-b', 'inventory'));
    await expectPublishDenied(a, seen, subjects.heartbeat('site-b'));
    await expectPublishDenied(a, seen, subjects.toListener('site-b', 'package'));
    await expectPublishDenied(a, seen, subjects.toListener('site-a', 'package'));
    assert.equal(await streamState(), before);
  });

  it("inventories: listener A may publish its own inventory subject (the UP stream takes it), never B's", async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const ack = await a.jetstream().publish(subjects.fromListener('site-a', 'inventory'), enc.encode('{"not":"an inventory"}'));
    assert.equal(ack.stream, STREAMS.up.name);
    await expectPublishDenied(a, seen, subjects.fromListener('site-b', 'inventory'));
    // The hub refuses it (not an inventory); wait for that, so later cases see a settled stream.
    await untilHubTook(ack.seq);
  });

  it('root KEK rotations: no listener can put one in any root_kek subject (its own included), nor confirm a KEK as another site', async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const before = await streamState();
    for (const s of [subjects.toListener('site-a', 'root_kek'), subjects.toListener('site-b', 'root_kek'), subjects.fromListener('site-b', 'kek_confirm')]) await expectPublishDenied(a, seen, s);
    assert.equal(await streamState(), before);
  });

  it("target KEKs: listener A may send its own target_kek request/confirmation subject, never B's, and can put no target KEK or target KEK rotation in any target_kek subject", async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const before = await streamState();
    for (const s of [subjects.fromListener('site-b', 'target_kek'), subjects.toListener('site-a', 'target_kek'), subjects.toListener('site-b', 'target_kek')]) await expectPublishDenied(a, seen, s);
    // A rotation-shaped message for its own target token, on the subject the hub's rotations use: refused like any other.
    const rotation = { payload: { type: 'keyhub.v1.target_kek_rotation', listenerId: 'site-a', target: 'hsm' }, signature: { alg: 'ES256', keyId: 'x', value: 'AAAA' } };
    await expectPublishDenied(a, seen, subjects.toListener('site-a', 'target_kek'), enc.encode(JSON.stringify(rotation)));
    assert.equal(await streamState(), before);
    // Its own UP subject is open to it (the stream takes it; the hub refuses the junk, unsigned).
    const ack = await a.jetstream().publish(subjects.fromListener('site-a', 'target_kek'), enc.encode('{"not":"a target KEK request"}'));
    assert.equal(ack.stream, STREAMS.up.name);
    await untilHubTook(ack.seq);
  });

  it("target updates: listener A may send its own target_update subject, never B's", async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const before = await streamState();
    await expectPublishDenied(a, seen, subjects.fromListener('site-b', 'target_update'));
    assert.equal(await streamState(), before);
    // Its own: the stream takes it; the hub refuses the junk, unsigned, and records no target update.
    const ack = await a.jetstream().publish(subjects.fromListener('site-a', 'target_update'), enc.encode('{"not":"a target update"}'));
    assert.equal(ack.stream, STREAMS.up.name);
    await untilHubTook(ack.seq);
  });

  it('listener A cannot create, update, delete or purge streams or consumers (the hub consumer cannot be replaced)', async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    const before = await streamState();
    const { down, up } = { down: STREAMS.down.name, up: STREAMS.up.name };
    for (const s of [
      `$JS.API.STREAM.CREATE.EVIL`,
      `$JS.API.STREAM.UPDATE.${down}`,
      `$JS.API.STREAM.DELETE.${down}`,
      `$JS.API.STREAM.DELETE.${up}`,
      `$JS.API.STREAM.PURGE.${down}`,
      `$JS.API.STREAM.MSG.DELETE.${down}`,
      `$JS.API.CONSUMER.CREATE.${down}`,
      `$JS.API.CONSUMER.CREATE.${down}.evil.keyhub.v1.to.site-b.>`,
      `$JS.API.CONSUMER.DURABLE.CREATE.${up}.hub`,
      `$JS.API.CONSUMER.DELETE.${up}.hub`,
      `$JS.API.CONSUMER.DELETE.${down}.listener-site-b`,
      `$JS.API.CONSUMER.DELETE.${down}.listener-site-a`,
      `$JS.API.STREAM.LIST`,
      `$JS.API.INFO`,
    ]) {
      await expectPublishDenied(a, seen, s);
    }
    assert.equal(await streamState(), before);
  });

  it("nobody but the server can answer the relay's publishes: a fake JetStream ack to the hub's inbox is refused", async () => {
    const a = await asListener('site-a');
    const seen = violations(a);
    await expectPublishDenied(a, seen, '_INBOX__hub.abcdef.1', enc.encode(JSON.stringify({ stream: STREAMS.down.name, seq: 999999 })));
    await expectSubscribeDenied(a, '_INBOX__hub.>');
    // Nor can it make the server send its own answers there: a publish whose reply is the hub's inbox.
    await expectPublishDenied(a, seen, `$JS.API.CONSUMER.MSG.NEXT.${STREAMS.down.name}.listener-site-b`, enc.encode('{}'), '_INBOX__hub.x');
  });

  it('a bootstrap credential can send only its own enrollment and read only its own answer', async () => {
    const file = await d.registerListener('site-c', '10m');
    const creds = await readFile(file, 'utf8');
    assert.equal((await import('node:fs')).statSync(file).mode & 0o777, 0o600);
    const boot = await connect({ ...d.natsTransport(), authenticator: credsAuthenticator(enc.encode(creds)), inboxPrefix: '_INBOX_site-c', maxReconnectAttempts: 0 });
    open.push(boot);
    const seen = violations(boot);
    // Allowed: publishing its enrollment (the stream acks it), asking about its enrollment consumer.
    const before = await streamState();
    const ack = await boot.jetstream().publish(subjects.fromListener('site-c', 'enroll'), enc.encode('{"not":"an enrollment"}'));
    assert.equal(ack.stream, STREAMS.up.name);
    await assert.rejects(boot.jetstream().consumers.get(STREAMS.down.name, 'enroll-site-c'), /not found/i);
    // Refused: everything else.
    for (const s of [
      subjects.fromListener('site-c', 'receipt'),
      subjects.fromListener('site-c', 'kek_confirm'),
      subjects.fromListener('site-c', 'inventory'),
      subjects.fromListener('site-c', 'target_kek'),
      subjects.fromListener('site-c', 'target_update'),
      subjects.heartbeat('site-c'),
      subjects.fromListener('site-a', 'enroll'),
      `$JS.API.CONSUMER.INFO.${STREAMS.down.name}.listener-site-c`,
      `$JS.API.CONSUMER.MSG.NEXT.${STREAMS.down.name}.listener-site-a`,
      `$JS.API.STREAM.INFO.${STREAMS.down.name}`,
    ]) {
      await expectPublishDenied(boot, seen, s);
    }
    for (const s of ['_INBOX_site-a.>', subjects.toListenerAll('site-c'), '>']) await expectSubscribeDenied(boot, s);
    void before;
    // The junk it sent is dropped by the hub (it does not verify), never applied.
  });

  it('an enrollment for an id nobody registered is dropped: no listener row, no audit event', async () => {
    const { Client } = await import('pg');
    const pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    try {
      const count = async () => (await pg.query(`SELECT count(*)::int AS n FROM audit_events`)).rows[0].n as number;
      const before = await count();
      // Published with admin rights (no listener may publish for another id): schema-valid, its signature is never even checked.
      const { generateKeyPairSync, randomUUID } = await import('node:crypto');
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
      const payload = {
        type: 'keyhub.v1.enrollment_request',
        id: randomUUID(),
        listenerId: 'site-z',
        issuedAt: new Date().toISOString(),
        identityKey: ec,
        transportKey: rsa,
        oaepHash: 'sha1',
        targets: [{ name: 'hsm', kind: 'pkcs11' }],
        natsUserKey: nkeys.createUser().getPublicKey(),
      };
      for (let i = 0; i < 20; i++) {
        await admin
          .jetstream()
          .publish(
            subjects.fromListener('site-z', 'enroll'),
            enc.encode(JSON.stringify({ payload: { ...payload, id: randomUUID() }, signature: { alg: 'ES256', keyId: 'x', value: Buffer.alloc(64).toString('base64') } })),
          );
      }
      const jsm = await admin.jetstreamManager();
      const deadline = Date.now() + 15_000;
      while ((await jsm.consumers.info(STREAMS.up.name, subjects.hubConsumer)).num_pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await pg.query(`SELECT count(*)::int AS n FROM listeners WHERE id = 'site-z'`)).rows[0].n, 0);
      assert.equal((await pg.query(`SELECT count(*)::int AS n FROM audit_events WHERE subject = 'listener:site-z'`)).rows[0].n, 0);
      assert.ok((await count()) - before < 5, 'no audit events for the dropped enrollments (20 were sent)');
      assert.equal((d.hub?.output.match(/enrollment for an id without an open registration dropped/g) ?? []).length <= 1, true, 'one log line for the flood');
    } finally {
      await pg.end();
    }
  });

  it("a revoked listener's live connection is cut and its next connection refused, on every server", async () => {
    const b = await asListener('site-b');
    const closed = b.closed();
    const r = await d.keyhub(['--json', 'listener', 'revoke', 'site-b', '--reason', 'permission matrix']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const err = await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('connection not cut within 10 s')), 10_000))]);
    assert.match(String((err as Error | undefined)?.message ?? err), /revoked|authori[sz]ation/i);
    await assert.rejects(asListener('site-b'), /authori[sz]ation|revoked/i);
    // Site A is untouched.
    const a = await asListener('site-a');
    assert.equal(
      (
        await a
          .jetstream()
          .consumers.get(STREAMS.down.name, 'listener-site-a')
          .then((c) => c.info())
      ).name,
      'listener-site-a',
    );
  });
});
