import { strict as assert } from 'node:assert';
import { generateKeyPairSync, sign } from 'node:crypto';
import { connect, nanos, nkeys, type NatsConnection } from 'nats';
import { STREAMS, subjects } from '@keyhub/protocol';
import { createLogger, KeyhubError, Pkcs11Hsm } from '@keyhub/shared';
import { HubBus } from '@keyhub/hub/dist/bus/hub-bus';
import { expectedStream } from '@keyhub/hub/dist/nats/jetstream-config';
import { NatsAuthority, NATS_KEY_LABELS } from '@keyhub/hub/dist/nats/nats-authority';
import { decodeNatsJwtClaims } from '@keyhub/hub/dist/nats/nats-jwt';
import { encodePublicNkey } from '@keyhub/hub/dist/nats/nkey-encoding';
import { listenerPermissions } from '@keyhub/hub/dist/nats/permissions';
import { createSoftHsm, startNatsServer, type NatsServerHandle, type SoftHsmEnv } from '../env';

const enc = new TextEncoder();

describe('NATS identities: NKEY encoding, JWTs signed in the HSM', function () {
  this.timeout(60_000);

  it('encodes an Ed25519 public key as an NKEY that nats.js accepts (prefix, base32, CRC-16)', () => {
    for (let i = 0; i < 20; i++) {
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
      for (const kind of ['operator', 'account', 'user'] as const) {
        const nk = encodePublicNkey(kind, raw);
        assert.equal(nk[0], { operator: 'O', account: 'A', user: 'U' }[kind]);
        const data = Buffer.from(`message ${i}`);
        assert.ok(nkeys.fromPublic(nk).verify(data, sign(null, data, privateKey)));
      }
    }
  });

  describe('in SoftHSM2 (CKM_EDDSA)', () => {
    let env: SoftHsmEnv;
    let hsm: Pkcs11Hsm;

    before(async () => {
      env = await createSoftHsm(['nats-keys']);
      process.env.SOFTHSM2_CONF = env.confPath;
      process.env.KEYHUB_TEST_NATS_PIN = env.tokens[0].pin;
      hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'nats-keys', pinEnv: 'KEYHUB_TEST_NATS_PIN' });
    });

    after(async () => {
      await hsm?.close();
      await env?.cleanup();
    });

    it('makes the operator, system and account keys once, sign-only, sensitive, never extractable', async () => {
      const first = await NatsAuthority.ensure(hsm);
      assert.deepEqual(first.created.sort(), Object.values(NATS_KEY_LABELS).sort());
      const again = await NatsAuthority.ensure(hsm);
      assert.deepEqual(again.created, []);
      assert.equal(again.authority.accountKey, first.authority.accountKey);
      for (const label of Object.values(NATS_KEY_LABELS)) {
        const [priv] = await hsm.findKeys({ class: 'private', label });
        const info = await hsm.keyInfo(priv);
        assert.deepEqual([info.sensitive, info.extractable, info.sign, info.decrypt, info.unwrap, info.token], [true, false, true, false, false, true]);
      }
    });

    it('issues JWTs whose Ed25519 signature (made by the token) verifies under the issuer NKEY', async () => {
      const authority = await NatsAuthority.load(hsm);
      const user = nkeys.createUser();
      const jwt = await authority.issueUser({ userKey: user.getPublicKey(), name: 'listener-site-a', permissions: listenerPermissions('site-a'), expiresAt: new Date(Date.now() + 60_000) });
      const [h, p, s] = jwt.split('.');
      assert.ok(nkeys.fromPublic(authority.accountKey).verify(enc.encode(`${h}.${p}`), Buffer.from(s, 'base64url')));
      const claims = decodeNatsJwtClaims(jwt) as { iss: string; sub: string; exp: number; nats: { type: string; version: number; pub: { allow: string[] } } };
      assert.equal(claims.iss, authority.accountKey);
      assert.equal(claims.sub, user.getPublicKey());
      assert.equal(claims.nats.type, 'user');
      assert.equal(claims.nats.version, 2);
      assert.ok(claims.nats.pub.allow.includes(subjects.heartbeat('site-a')));
      const account = await authority.accountJwt({ [user.getPublicKey()]: 1234 });
      const [ah, ap, as] = account.split('.');
      assert.ok(nkeys.fromPublic(authority.operatorKey).verify(enc.encode(`${ah}.${ap}`), Buffer.from(as, 'base64url')));
      assert.deepEqual((decodeNatsJwtClaims(account) as { nats: { revocations: Record<string, number> } }).nats.revocations, { [user.getPublicKey()]: 1234 });
      await assert.rejects(authority.issueUser({ userKey: 'not-a-key', name: 'x', permissions: listenerPermissions('x') }), (e: KeyhubError) => e.code === 'INPUT_INVALID');
    });
  });
});

describe('the hub checks its streams and consumers at start: repairs drift, refuses what it cannot repair', function () {
  this.timeout(60_000);
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const logger = createLogger('test', 'silent');

  before(async () => {
    nats = await startNatsServer({ name: 'keyhub-config-check' });
    nc = await connect({ servers: [nats.url] });
  });

  after(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it('creates streams and consumers with max_deliver, and puts back changed limits', async () => {
    const bus = await HubBus.connect({ servers: [nats.url], name: 'check', maxDeliver: 5, upMaxDeliver: 40 }, logger);
    try {
      await bus.ensureStreams();
      await bus.ensureListenerConsumer('site-a');
      const jsm = await nc.jetstreamManager();
      assert.equal((await jsm.consumers.info(STREAMS.down.name, subjects.listenerConsumer('site-a'))).config.max_deliver, 5);
      assert.equal((await jsm.consumers.info(STREAMS.up.name, subjects.hubConsumer)).config.max_deliver, 40);

      // Tampering someone with admin rights could do: shorter retention, a copy of every package elsewhere, redelivery forever.
      const down = (await jsm.streams.info(STREAMS.down.name)).config;
      await jsm.streams.update(STREAMS.down.name, { ...down, max_age: nanos(5 * 60_000), max_msg_size: 1 << 20 });
      await jsm.consumers.update(STREAMS.down.name, subjects.listenerConsumer('site-a'), { max_deliver: -1 });
      await bus.ensureStreams();
      const after = (await jsm.streams.info(STREAMS.down.name)).config;
      assert.equal(after.max_age, expectedStream('down', 1).max_age);
      assert.equal(after.max_msg_size, expectedStream('down', 1).max_msg_size);
      assert.equal((await jsm.consumers.info(STREAMS.down.name, subjects.listenerConsumer('site-a'))).config.max_deliver, 5);
    } finally {
      await bus.close();
    }
  });

  it('refuses to start over a consumer it cannot repair (another filter, or a push consumer)', async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.add(STREAMS.down.name, { durable_name: subjects.listenerConsumer('site-b'), filter_subject: subjects.toListenerAll('site-a'), ack_policy: 'explicit' as never });
    const bus = await HubBus.connect({ servers: [nats.url], name: 'check' }, logger);
    try {
      await assert.rejects(bus.ensureStreams(), (e: KeyhubError) => e.code === 'BUS_CONFIG_TAMPERED' && /filter_subject/.test(e.message));
      await jsm.consumers.delete(STREAMS.down.name, subjects.listenerConsumer('site-b'));
      await jsm.consumers.delete(STREAMS.up.name, subjects.hubConsumer);
      await jsm.consumers.add(STREAMS.up.name, { durable_name: subjects.hubConsumer, deliver_subject: 'stolen.up', ack_policy: 'explicit' as never });
      await assert.rejects(bus.ensureStreams(), (e: KeyhubError) => e.code === 'BUS_CONFIG_TAMPERED' && /deliver_subject/.test(e.message));
      // A stream remade to copy every package elsewhere (2.9 cannot remove a republish rule by update).
      await jsm.consumers.delete(STREAMS.up.name, subjects.hubConsumer);
      await jsm.streams.delete(STREAMS.down.name);
      await jsm.streams.add({ ...expectedStream('down', 1), republish: { src: '>', dest: 'stolen.>' } });
      await assert.rejects(bus.ensureStreams(), (e: KeyhubError) => e.code === 'BUS_CONFIG_TAMPERED' && /republish/.test(e.message));
    } finally {
      await bus.close();
    }
  });
});
