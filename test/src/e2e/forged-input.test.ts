import { strict as assert } from 'node:assert';
import { randomBytes, randomUUID } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { Client } from 'pg';
import { decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, packageSha256, STREAMS, subjects, type KeyPackage, type Receipt, type SignedEnvelope } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { ListenerAgent } from '@keyhub/listener/dist/agent';
import type { InboxResult } from '@keyhub/listener/dist/inbox';
import { openListenerRuntime } from '@keyhub/listener/dist/runtime';
import type { Target } from '@keyhub/listener/dist/targets/target';
import { Deployment } from '../harness/deployment';

/**
 * The receipt and heartbeat attacks of issue 10, rerun against the real
 * parts (hub and listener processes, nats-server, SoftHSM2, PostgreSQL):
 * a forged copy of a real package earns no receipt and no longer fails the
 * genuine distribution; a captured heartbeat replayed later keeps no dead
 * site online; a package that always fails ends as a failed receipt with
 * its code after max_deliver deliveries and is not delivered again.
 */
describe('end to end: forged copies, replayed heartbeats, packages that never import', function () {
  this.timeout(240_000);
  let d: Deployment;
  let nc: NatsConnection;
  let pg: Client;
  const receipts: Receipt[] = [];
  const heartbeats: Uint8Array[] = [];

  before(async () => {
    d = await Deployment.create(['site-a']);
    await d.initHub();
    await d.startHub();
    await d.enrollListener('site-a');
    nc = await d.natsConnect();
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    nc.subscribe(subjects.fromListener('site-a', 'receipt'), {
      callback: (_e, m) => {
        const dec = decodeEnvelope(m.data);
        if (dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.receipt) receipts.push(dec.envelope.payload as Receipt);
      },
    });
    nc.subscribe(subjects.heartbeat('site-a'), { callback: (_e, m) => heartbeats.push(m.data) });
  });

  after(async () => {
    await nc?.close();
    await pg?.end();
    await d?.cleanup();
  });

  async function status(key: string): Promise<StatusRow[]> {
    return d.keyhubJson<StatusRow[]>(['status', key]);
  }

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`${what} not reached in ${timeoutMs} ms\nlistener: ${d.site('site-a').process?.output.slice(-2000) ?? ''}\nhub: ${d.hub?.output.slice(-2000) ?? ''}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('a copy of a real package with a garbage signature, delivered first, earns no receipt, and the genuine distribution still confirms', async () => {
    await d.stopListener('site-a');
    await d.keyhubJson(['key', 'create', 'forged-first', '--alg', 'AES-256']);
    const push = await d.keyhub(['distribute', 'forged-first', '--to', 'site-a']);
    assert.equal(push.code, 0, push.stdout + push.stderr);
    const jsm = await nc.jetstreamManager();
    const genuine = await waitFor('the package in the stream', async () => {
      const m = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.toListener('site-a', 'package') }).catch(() => undefined);
      const dec = m && decodeEnvelope(m.data);
      return dec && dec.ok && (dec.envelope.payload as KeyPackage).key?.name === 'forged-first'
        ? { seq: m.seq, data: Buffer.from(m.data), envelope: dec.envelope as SignedEnvelope<KeyPackage> }
        : undefined;
    });
    // The attacker's copy goes before the genuine package: same payload, garbage signature.
    assert.ok(await jsm.streams.deleteMessage(STREAMS.down.name, genuine.seq));
    const forged: SignedEnvelope<KeyPackage> = { payload: genuine.envelope.payload, signature: { alg: 'ES256', keyId: genuine.envelope.signature.keyId, value: randomBytes(64).toString('base64') } };
    const js = nc.jetstream();
    await js.publish(subjects.toListener('site-a', 'package'), encodeEnvelope(forged), { msgID: randomUUID() });
    await js.publish(subjects.toListener('site-a', 'package'), genuine.data, { msgID: randomUUID() });

    await d.startListener('site-a');
    const rows = await waitFor('confirmation', async () => {
      const s = await status('forged-first');
      return s[0]?.state === 'confirmed' || s[0]?.state === 'failed' ? s : undefined;
    });
    assert.equal(rows[0].state, 'confirmed', JSON.stringify(rows));
    await new Promise((r) => setTimeout(r, 1000));
    const answers = receipts.filter((r) => r.packageId === genuine.envelope.payload.id);
    assert.equal(answers.length, 1, `exactly one receipt, for the genuine package: ${JSON.stringify(answers)}`);
    assert.equal(answers[0].outcome, 'imported');
    assert.equal(answers[0].packageSha256, packageSha256(genuine.data), 'the receipt names the hash of the genuine envelope');
    const out = d.site('site-a').process!.output;
    assert.match(out, /"code":"SIGNATURE_INVALID"[^\n]*package dropped: signature does not verify/);
    assert.ok(!out.includes(forged.signature.value) && !out.includes(genuine.envelope.payload.wrapping.blob), 'the dropped message is logged without its payload');
  });

  it('a heartbeat captured and re-published later does not move last_seen_at; a fresh one does', async () => {
    const captured = await waitFor('a heartbeat from site-a', async () => heartbeats.at(-1));
    await d.stopListener('site-a');
    // A fresh heartbeat received just before the stop is flushed within 2 s; let that happen before turning the clock back.
    await new Promise((r) => setTimeout(r, 3_000));
    // The site has been dead for a while.
    await pg.query(`UPDATE listeners SET last_seen_at = now() - interval '10 minutes' WHERE id = 'site-a'`);
    const lastSeen = async (): Promise<number> => (await pg.query(`SELECT last_seen_at FROM listeners WHERE id = 'site-a'`)).rows[0].last_seen_at.getTime();
    const before = await lastSeen();
    for (let i = 0; i < 3; i++) nc.publish(subjects.heartbeat('site-a'), captured);
    await nc.flush();
    await new Promise((r) => setTimeout(r, 3_500)); // longer than the hub's 2 s heartbeat flush
    assert.equal(await lastSeen(), before, 'the replay moved nothing');
    const listed = await d.keyhubJson<Array<{ id: string; lastSeenAt?: string | null }>>(['listener', 'list']);
    const row = listed.find((l) => l.id === 'site-a') as Record<string, unknown> | undefined;
    if (row && typeof row.lastSeenAt === 'string') assert.equal(new Date(row.lastSeenAt).getTime(), before);
    assert.match(d.hub!.output, /"code":"HEARTBEAT_STALE"/);

    await d.startListener('site-a');
    await waitFor('a fresh heartbeat recorded', async () => ((await lastSeen()) > before ? true : undefined), 20_000);
  });

  it('a package that always fails to import ends with a failed receipt carrying its code after max_deliver deliveries, and is not delivered again', async () => {
    await d.stopListener('site-a');
    const site = d.site('site-a');
    // The real listener, in this process, with one fault injected: its token fails every import of one key.
    for (const k of ['SOFTHSM2_CONF', 'KEYHUB_LISTENER_PIN'] as const) process.env[k] = site.env[k];
    const rt = await openListenerRuntime(site.home);
    const real = rt.targets.get('hsm')!;
    let attempts = 0;
    const failing: Target = {
      name: real.name,
      kind: real.kind,
      import: async (req) => {
        if (!req.key.name.startsWith('always-fails')) return real.import(req);
        attempts++;
        throw new KeyhubError('HSM_ERROR', 'injected token failure', { ckr: 'CKR_DEVICE_ERROR' });
      },
      disable: (ref) => real.disable(ref),
      destroy: (ref) => real.destroy(ref),
      suspend: (ref) => real.suspend(ref),
      resume: (ref, usages) => real.resume(ref, usages),
      deactivate: (ref, usages) => real.deactivate(ref, usages),
      compromise: (ref) => real.compromise(ref),
      inventory: () => real.inventory(),
      health: () => real.health(),
    };
    rt.targets.set('hsm', failing);
    const results: InboxResult[] = [];
    const agent = new ListenerAgent(rt, { onResult: (r) => results.push(r) });
    try {
      await agent.start();
      await d.keyhubJson(['key', 'create', 'always-fails', '--alg', 'AES-128']);
      const push = await d.keyhub(['distribute', 'always-fails', '--to', 'site-a']);
      assert.equal(push.code, 0, push.stdout + push.stderr);
      const rows = await waitFor('the distribution to fail', async () => {
        const s = await status('always-fails');
        return s[0]?.state === 'failed' ? s : undefined;
      });
      assert.equal(attempts, rt.config.maxDeliver, `one import per delivery, ${rt.config.maxDeliver} in all`);
      assert.equal(rows[0].errorCode, 'HSM_ERROR');
      const failed = receipts.filter((r) => r.outcome === 'failed' && r.error?.code === 'HSM_ERROR');
      assert.equal(failed.length, 1, 'one failed receipt, with the code');
      // Nothing more comes: the message was terminated, the consumer holds nothing for it.
      await new Promise((r) => setTimeout(r, 5_000));
      assert.equal(attempts, rt.config.maxDeliver);
      const info = await (await nc.jetstreamManager()).consumers.info(STREAMS.down.name, subjects.listenerConsumer('site-a'));
      assert.equal(info.num_pending + info.num_ack_pending, 0, JSON.stringify({ pending: info.num_pending, ackPending: info.num_ack_pending }));
      // And the listener goes on importing.
      await d.keyhubJson(['key', 'create', 'after-failure', '--alg', 'AES-128']);
      const ok = await d.keyhub(['distribute', 'after-failure', '--to', 'site-a', '--wait', '--timeout', '60']);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.ok(results.some((r) => r.kind === 'receipt' && r.outcome === 'failed' && r.code === 'HSM_ERROR'));
    } finally {
      await agent.stop();
      await rt.close();
    }
  });
});
